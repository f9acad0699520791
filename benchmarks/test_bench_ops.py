"""Each cell of ``infoaudit bench`` as a pytest-benchmark test (see conftest.py for options).

The timed function is the backend registry's op (first variant, "jit" for JAX) with the result
synchronised (JAX ``block_until_ready``; CUDA ``torch.cuda.synchronize``); two untimed calls
first compile and warm up. ``extra_info`` carries dtype, device, shape, bytes, GB/s and the
fraction of the same-shape copy bandwidth.
"""
from __future__ import annotations

import numpy as np
import pytest

from infoaudit.bench import cells as C


def test_op(cell, benchmark, handles, inputs, copy_limit):
    backend, device, dtype, shape, op = cell
    h = handles(backend)
    if not h.ok:
        pytest.skip(h.reason)
    devs = [d for d in h.devices if C.device_matches(d, device)]
    if not devs:
        if C.is_cuda(device) and backend == "torch":
            pytest.skip(C.cuda_absent_reason() or f"torch has no {device} device")
        pytest.skip(f"{backend} has no {device} device here (devices: {', '.join(h.devices)})")
    dev = devs[0]
    if dtype not in h.module.DTYPES:
        pytest.skip(f"{backend} does not support {dtype}")
    o, why = C.pick_op(h, op)
    if o is None:
        pytest.skip(why)
    args = inputs(shape).args(op, dtype)
    bargs = [h.module.to_backend(a, dev) if isinstance(a, np.ndarray) else a for a in args]
    sync, barrier = C.syncs(h, dev)
    fn = o.fn

    def call():
        out = fn(*bargs)
        if sync:
            sync(out)
        if barrier:
            barrier()
        return out

    import time
    try:
        t0 = time.perf_counter()
        call()                      # compile / first touch
        call()
        one = (time.perf_counter() - t0) / 2
    except Exception as e:
        pytest.skip(f"unsupported by {backend}: {type(e).__name__}: {e}")
    if one > 0.2:                   # slow cells (e.g. NumPy float16 at 50k vocab): a few rounds only
        benchmark.pedantic(call, rounds=3, iterations=1)
    else:
        benchmark(call)
    b, v = shape
    nbytes = C.min_bytes(op, b, v, dtype)["total"]
    median_s = benchmark.stats.stats.median
    gbps = nbytes / median_s / 1e9
    limit = copy_limit(C.limit_device(dev), shape, dtype)
    benchmark.extra_info.update(
        backend=backend, device=dev, dtype=dtype, shape=f"{b}x{v}", op=op, call=o.call, variant=o.variant,
        bytes=nbytes, elements_per_s=b * v / median_s, gbps=gbps, limit_gbps=limit,
        fraction_of_limit=(gbps / limit) if limit else None)
