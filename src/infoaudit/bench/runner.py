"""Run the throughput benchmark: limits first, then every cell, then the derived tables.

Cells are (backend, device, dtype, shape, op). Shapes run smallest first so each cell's time
per element on the previous shape predicts the next; a cell predicted to need more than
``2 x max_call_s`` for a *single* call is skipped with that prediction as its reason (e.g.
NumPy's float16 on 1,024 x 50,257). Nothing is skipped silently: every skipped cell is in the
JSON with its reason.
"""
from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import SCHEMA, SCHEMA_VERSION, bandwidth, environment, seed
from . import cells as C
from .timing import time_call

__all__ = ["RENDER_RESERVE_S", "CELL_OVERHEAD_ELEMS", "PREDICT_FROM_S", "MEMORY_BOUND_WITHIN", "SETTLE_S",
           "NOISY_IQR", "Config", "Progress", "run", "Schedule", "fp16_vs_fp32", "seed_section",
           "summarize"]

RENDER_RESERVE_S = 8.0      # kept back from the time limit for the report
CELL_OVERHEAD_ELEMS = 2e6   # a cell's fixed cost (warm-up, conversion, compile) in element-equivalents
PREDICT_FROM_S = 0.02       # predict a bigger shape's time only from calls at least this long
MEMORY_BOUND_WITHIN = 1.5   # time <= 1.5 x (bytes / copy bandwidth) -> memory-bound
SETTLE_S = 0.05             # pause between frameworks (OpenMP / Eigen threads spin after work)
NOISY_IQR = 0.25            # a cell whose IQR exceeds 25% of its median is flagged noisy


@dataclass
class Config:
    shapes: list = field(default_factory=lambda: list(C.DEFAULT_SHAPES))
    dtypes: list = field(default_factory=lambda: list(C.DTYPES))
    backends: list = field(default_factory=lambda: list(C.BACKENDS))
    ops: list = field(default_factory=lambda: list(C.OPS))
    devices: list = None            # None: every available device
    quick: bool = False
    budget_s: float = 0.4           # timed-sample budget per cell
    max_call_s: float = 2.0         # beyond this a call gets a single timed call
    min_samples: int = 3
    max_samples: int = 30
    torch_threads: int = None       # torch.set_num_threads before the run (default: torch's own)
    time_limit_s: float = 540.0     # the whole run; cells get shares of what is left
    prealloc: bool = True
    accuracy: bool = True
    seed_args: dict = field(default_factory=dict)
    errors_path: str = None
    argv: list = field(default_factory=list)

    @classmethod
    def preset(cls, quick=False, **kw):
        if quick:
            base = dict(shapes=list(C.QUICK_SHAPES), quick=True, budget_s=0.06, max_call_s=0.15,
                        min_samples=3, max_samples=25, time_limit_s=100.0)
        else:
            base = dict(shapes=list(C.DEFAULT_SHAPES), budget_s=0.4, max_call_s=2.0, time_limit_s=540.0,
                        max_samples=60)
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)

    def as_dict(self):
        d = dict(self.__dict__)
        d["shapes"] = [list(s) for s in self.shapes]
        return d


class Progress:
    def __init__(self, stream=None, quiet=False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, msg):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=self.stream, flush=True)


def _devices_for(handle, wanted):
    """(devices to run, [(device, reason)] skipped) for a backend."""
    have = list(handle.devices) or ["cpu"]
    if wanted is None:
        skipped = []
        if not any(C.is_cuda(d) for d in have) and handle.name in ("torch", "jax"):
            why = C.cuda_absent_reason() if handle.name == "torch" else \
                f"no CUDA device for JAX here (jax devices: {', '.join(have)})"
            if why:
                skipped.append(("cuda", why))
        return have, skipped
    run, skipped = [], []
    for w in wanted:
        m = [d for d in have if C.device_matches(d, w)]
        if m:
            run.extend(d for d in m if d not in run)
        elif C.is_cuda(w) and handle.name in ("numpy", "scipy"):
            skipped.append((w, f"{handle.name} runs on the CPU only"))
        elif C.is_cuda(w) and handle.name == "torch":
            skipped.append((w, C.cuda_absent_reason() or f"torch has no device {w!r} (devices: {', '.join(have)})"))
        else:
            skipped.append((w, f"{handle.name} has no device {w!r} here (devices: {', '.join(have)})"))
    return run, skipped


def run(cfg: Config, progress=None) -> dict:
    say = progress or Progress(quiet=True)
    t_start = time.perf_counter()
    shapes = sorted({tuple(s) for s in cfg.shapes}, key=lambda s: (s[0] * s[1], s))
    handles = []
    for name in cfg.backends:
        h = C.load_backend(name)
        handles.append(h)
        say(f"backend {name}: " + (f"{h.version} on {', '.join(h.devices)}" if h.ok else f"SKIPPED: {h.reason}"))
    if cfg.torch_threads and any(h.name == "torch" and h.ok for h in handles):
        import torch
        torch.set_num_threads(cfg.torch_threads)
        say(f"torch.set_num_threads({cfg.torch_threads})")
    env = environment.collect(handles)

    plan = []           # (handle, device) pairs that run
    skipped_groups = []
    for h in handles:
        if not h.ok:
            skipped_groups.append({"backend": h.name, "device": "*", "reason": h.reason})
            continue
        devs, skipped = _devices_for(h, cfg.devices)
        for d, why in skipped:
            skipped_groups.append({"backend": h.name, "device": d, "reason": why})
            say(f"skip {h.name} on {d}: {why}")
        for d in devs:
            plan.append((h, d))

    # 1. the machine's limits, same run, same sizes and dtypes
    tk = dict(budget_s=min(cfg.budget_s, 0.25), max_call_s=cfg.max_call_s, min_samples=cfg.min_samples,
              max_samples=cfg.max_samples)
    devices = sorted({C.limit_device(d) for _, d in plan} | {"cpu"}, key=lambda d: (C.is_cuda(d), d))
    pairs = [(s, dt) for s in shapes for dt in cfg.dtypes]
    say(f"measuring copy bandwidth for {len(pairs)} shape x dtype pairs on {', '.join(devices)}")
    t_lim = time.perf_counter()
    limits = bandwidth.measure(pairs, devices, quick=cfg.quick, progress=say, **tk)
    limits["half_conversion"] = bandwidth.half_conversion_rates(**tk)
    phases = {"setup_s": t_lim - t_start, "limits_s": time.perf_counter() - t_lim}
    t_cells = time.perf_counter()

    # 2. the cells
    total = len(plan) * len(shapes) * len(cfg.dtypes) * len(cfg.ops)
    say(f"{total} cells: {len(plan)} backend/device pairs x {len(shapes)} shapes x {len(cfg.dtypes)} dtypes "
        f"x {len(cfg.ops)} ops (budget {cfg.budget_s:g} s per cell)")
    rows, per_elem = [], {}
    i = 0
    sched = Schedule(t_start + cfg.time_limit_s - RENDER_RESERVE_S,
                     [s[0] * s[1] + CELL_OVERHEAD_ELEMS for s in shapes for _ in range(total // max(1, len(shapes)))])
    for shape in shapes:
        inputs = C.InputSet(shape)
        for dtype in cfg.dtypes:
            for h, device in plan:
                time.sleep(SETTLE_S)     # let the previous framework's spinning worker threads sleep
                converted = {}
                for op in cfg.ops:
                    i += 1
                    share = sched.share()
                    row = _cell(h, device, dtype, shape, op, inputs, converted, per_elem, cfg, share)
                    sched.done()
                    rows.append(row)
                    say(f"[{i}/{total}] {_progress_line(row)}")
                converted.clear()
                _release(h)
            inputs.drop_dtype(dtype)
        del inputs

    for g in skipped_groups:
        for shape in shapes:
            for dtype in cfg.dtypes:
                for op in cfg.ops:
                    rows.append({"backend": g["backend"], "device": g["device"], "dtype": dtype,
                                 "shape": list(shape), "op": op, "status": "skipped", "reason": g["reason"]})

    phases["cells_s"] = time.perf_counter() - t_cells
    env["load_average_end"] = environment.load_average()
    la = [x for x in (env.get("load_average_start") or [])[:1] + (env["load_average_end"] or [])[:1]]
    ncpu = env.get("usable_cpus") or 1
    if la and max(la) > 0.75 * ncpu:
        env["warning"] = (f"the machine was busy: 1-minute load average {max(la):.1f} on {ncpu} usable CPUs "
                          "(other processes); multi-threaded backends (torch, jax) suffer most; rerun on an idle "
                          "machine for numbers to compare")
        say("WARNING: " + env["warning"])

    # 3. derived: GB/s, fraction of the limit, bound
    for r in rows:
        _derive(r, limits)
    result = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(cfg.argv), "mode": "quick" if cfg.quick else "full", "config": cfg.as_dict(),
        "environment": env, "limits": limits, "cells": rows,
        "skipped_groups": skipped_groups, "phases": phases,
    }
    result["fp16_vs_fp32"] = fp16_vs_fp32(result, errors=_load_errors(cfg.errors_path))
    result["seed"] = seed_section(result, **(cfg.seed_args or {}))
    result["seed"]["sampled_softmax"] = _sampled_softmax(cfg, say)
    result["summary"] = summarize(result)
    result["wall_s"] = time.perf_counter() - t_start
    return result


class Schedule:
    """Shares of the run's time limit: each remaining cell gets time in proportion to its weight
    (its elements plus a fixed overhead), so a slow or busy machine skips big cells with a reason
    instead of overrunning."""

    def __init__(self, deadline, weights):
        self.deadline = deadline
        self.weights = list(weights)
        self.i = 0

    def share(self) -> float:
        left = sum(self.weights[self.i:]) or 1
        w = self.weights[self.i] if self.i < len(self.weights) else 0
        return max(0.0, self.deadline - time.perf_counter()) * w / left

    def done(self):
        self.i += 1


def _release(h):
    if h.name == "torch":
        try:
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def _progress_line(r):
    head = f"{r['backend']:<5} {r['device']:<6} {r['dtype']:<8} {C.shape_str(r['shape']):>11} {r['op']:<32}"
    if r["status"] != "ok":
        return f"{head} {r['status'].upper()}: {r['reason']}"
    t = r["timing"]
    bw = r["bytes"]["total"] / t["median_ns"]
    extra = ""
    if r.get("prealloc", {}).get("status") == "ok":
        extra = f"  out=: {r['prealloc']['timing']['median_ns'] / 1e6:.3g} ms"
    return f"{head} {t['median_ns'] / 1e6:9.3g} ms  {bw:6.2f} GB/s  (n={t['samples']}x{t['inner']}){extra}"


def _cell(h, device, dtype, shape, op, inputs, converted, per_elem, cfg, share=float("inf")):
    b, v = shape
    row = {"backend": h.name, "device": device, "dtype": dtype, "shape": [b, v], "op": op,
           "elements": b * v, "bytes": C.min_bytes(op, b, v, dtype)}
    if dtype not in getattr(h.module, "DTYPES", C.DTYPES):
        row.update(status="skipped", reason=f"{h.name} does not support {dtype}")
        return row
    o, why = C.pick_op(h, op)
    if o is None:
        row.update(status="skipped", reason=why)
        return row
    row.update(variant=o.variant, call=o.call)
    key = (h.name, device, op, dtype)
    row["time_share_s"] = share
    if key in per_elem:
        pred = per_elem[key][0] * b * v / 1e9
        basis = f"{per_elem[key][0]:.1f} ns/element measured at {per_elem[key][1]}"
        if pred > 2 * cfg.max_call_s:
            row.update(status="skipped", predicted_call_s=pred,
                       reason=f"time budget: one call predicted to take {pred:.1f} s ({basis}; cap {2 * cfg.max_call_s:g} s)")
            return row
        if 2 * pred > 1.5 * share:
            row.update(status="skipped", predicted_call_s=pred,
                       reason=(f"run time limit: one call predicted to take {pred:.1f} s ({basis}), this cell's "
                               f"share of the time left is {share:.1f} s (--time-limit {cfg.time_limit_s:g} s)"))
            return row
    budget_s = max(0.0, min(cfg.budget_s, 0.6 * share))
    max_call_s = max(0.01, min(cfg.max_call_s, share / 3))
    sync, barrier = C.syncs(h, device)
    try:
        args = C.InputSet.args(inputs, op, dtype)
        bargs = []
        for a in args:
            if isinstance(a, np.ndarray):
                k = id(a)
                if k not in converted:
                    converted[k] = (a, h.module.to_backend(a, device))
                bargs.append(converted[k][1])
            else:
                bargs.append(a)
        fn = o.fn
        timing = time_call(lambda: fn(*bargs), sync=sync, barrier=barrier, budget_s=budget_s,
                           max_call_s=max_call_s, min_samples=cfg.min_samples,
                           max_samples=cfg.max_samples, keep_output=True)
    except Exception as e:
        row.update(status="unsupported", reason=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        return row
    out = timing.output
    timing.output = None
    if timing.iqr_rel > NOISY_IQR:
        timing.notes.append(f"noisy: interquartile range {timing.iqr_rel:.0%} of the median")
    row.update(status="ok", timing=timing.as_dict(), returned_dtype=_dtype_of(out))
    if timing.notes:
        row["notes"] = list(timing.notes)
    if timing.median_ns >= PREDICT_FROM_S * 1e9 or key not in per_elem:
        per_elem[key] = (timing.median_ns / (b * v), C.shape_str(shape))
    if timing.median_ns < PREDICT_FROM_S * 1e9:     # overhead-dominated: no basis for a prediction
        per_elem.pop(key, None)
    if cfg.accuracy and op == "softmax" and b * v <= 4_200_000:
        row["accuracy"] = _softmax_accuracy(h, out, args[0], dtype)
    del out
    if cfg.prealloc:
        row["prealloc"] = _prealloc(h, device, op, bargs, sync, barrier, cfg, timing, share - timing.total_s)
    return row


def _dtype_of(x):
    d = getattr(x, "dtype", None)
    s = str(d) if d is not None else type(x).__name__
    return s.replace("torch.", "")


def _softmax_accuracy(h, out, z, dtype):
    """Max/p99 ULP of the op's softmax vs a float64 softmax of the same (rounded) inputs."""
    from ..dtypes import fmt, to_f64, ulp_of

    try:
        y = np.asarray(h.module.to_numpy(out))
        y = to_f64(y) if y.dtype != np.float64 else y
        zz = to_f64(z)
        m = zz.max(axis=-1, keepdims=True)
        e = np.exp(zz - m)
        ref = e / e.sum(axis=-1, keepdims=True)
        err = np.abs(y - ref) / ulp_of(ref, fmt(dtype))
        return {"max_ulp": float(np.nanmax(err)), "p99_ulp": float(np.nanpercentile(err, 99)),
                "nonfinite": int((~np.isfinite(y)).sum()),
                "method": "vs float64 softmax of the same rounded inputs (random N(0, 2^2) logits)"}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def _prealloc(h, device, op, bargs, sync, barrier, cfg, alloc_timing, share_left=float("inf")):
    try:
        fn, call, why = C.prealloc_op(h, op, bargs, device)
    except Exception as e:
        return {"status": "unsupported", "reason": f"{type(e).__name__}: {e}"}
    if fn is None:
        return {"status": "n/a", "reason": why}
    if alloc_timing.median_ns > cfg.max_call_s * 1e9:
        return {"status": "skipped", "call": call,
                "reason": f"time budget: the allocating call takes {alloc_timing.median_ns / 1e9:.2f} s "
                          f"(over {cfg.max_call_s:g} s)"}
    if 3 * alloc_timing.median_ns / 1e9 > max(0.0, share_left) + 0.05:
        return {"status": "skipped", "call": call,
                "reason": f"run time limit: {max(0.0, share_left):.2f} s of this cell's share left, "
                          f"a call takes {alloc_timing.median_ns / 1e9:.2f} s"}
    try:
        t = time_call(fn, sync=sync, barrier=barrier, budget_s=min(cfg.budget_s / 2, max(0.0, share_left) / 2),
                      max_call_s=cfg.max_call_s,
                      min_samples=cfg.min_samples, max_samples=cfg.max_samples)
    except Exception as e:
        return {"status": "unsupported", "call": call, "reason": f"{type(e).__name__}: {e}"}
    t_alloc = alloc_timing.median_ns
    return {"status": "ok", "call": call, "timing": t.as_dict(),
            "allocation_fraction": (t_alloc - t.median_ns) / t_alloc if t_alloc > 0 else None}


def _derive(r, limits):
    if r.get("status") != "ok":
        return
    t = r["timing"]["median_ns"]
    r["seconds_per_call"] = t / 1e9
    r["elements_per_s"] = r["elements"] / (t / 1e9)
    r["gbps"] = r["bytes"]["total"] / t
    r["gbps_spread"] = [r["bytes"]["total"] / r["timing"]["p75_ns"], r["bytes"]["total"] / r["timing"]["p25_ns"]]
    ldev = C.limit_device(r["device"])
    lim, impl = bandwidth.limit_for(limits, ldev, r["shape"], r["dtype"])
    dram = bandwidth.reference_gbps(limits, ldev, "DRAM")
    r["limit_gbps"], r["limit_impl"], r["dram_gbps"] = lim, impl, dram
    if lim:
        frac = r["gbps"] / lim
        r["fraction_of_limit"] = frac
        factor = 1 / frac if frac > 0 else float("inf")
        r["bound"] = {"kind": "memory" if factor <= MEMORY_BOUND_WITHIN else "compute",
                      "time_over_copy_time": factor,
                      "text": (f"memory-bound ({frac:.0%} of copy bandwidth)" if factor <= MEMORY_BOUND_WITHIN
                               else f"compute-bound: {factor:.1f}x the time to copy its bytes")}
    if dram:
        r["fraction_of_dram"] = r["gbps"] / dram
    p = r.get("prealloc")
    if p and p.get("status") == "ok":
        p["gbps"] = r["bytes"]["total"] / p["timing"]["median_ns"]


# --- FP16 vs FP32 softmax ---------------------------------------------------------------------

def _load_errors(path):
    """softmax accuracy from an error report (any infoaudit results JSON): {(backend, dtype): row}."""
    import glob
    import json
    import os

    if not path:
        return {}
    files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "*.json")))
    found = {}
    for f in files:
        try:
            with open(f) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            continue
        for d in _walk(data):
            if d.get("quantity") == "softmax" and "backend" in d and "dtype" in d and "max_ulp" in d:
                k = (d["backend"], d["dtype"])
                if k not in found or (d.get("max_ulp") or 0) > (found[k].get("max_ulp") or 0):
                    found[k] = {"max_ulp": d.get("max_ulp"), "p99_ulp": d.get("p99_ulp"),
                                "nonfinite": d.get("nonfinite_total"), "source": os.path.basename(f)}
    return found


def _walk(x, depth=0):
    if depth > 8:
        return
    if isinstance(x, dict):
        yield x
        for v in x.values():
            yield from _walk(v, depth + 1)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v, depth + 1)


def fp16_vs_fp32(result, errors=None) -> list:
    """Speed ratio FP32/FP16 (and bfloat16) of softmax per backend, device and shape, with why."""
    errors = errors or {}
    cells = {(c["backend"], c["device"], tuple(c["shape"]), c["dtype"]): c
             for c in result["cells"] if c["op"] == "softmax"}
    conv = {r["results"]: r["ns_per_element"] for r in result["limits"].get("half_conversion", [])}
    keys = sorted({(b, d, s) for (b, d, s, _) in cells}, key=lambda k: (k[2][0] * k[2][1], k[0], k[1]))
    out = []
    for b, d, s in keys:
        c16, c32, cbf = (cells.get((b, d, s, dt)) for dt in ("float16", "float32", "bfloat16"))
        row = {"backend": b, "device": d, "shape": list(s)}
        for tag, c in (("float16", c16), ("float32", c32), ("bfloat16", cbf)):
            if c is not None and c.get("status") == "ok":
                row[f"{tag}_ms"] = c["timing"]["median_ns"] / 1e6
                row[f"{tag}_fraction_of_limit"] = c.get("fraction_of_limit")
                acc = errors.get((b, tag))
                if acc:
                    row[f"{tag}_accuracy"] = dict(acc, method=f"error report {acc['source']}")
                elif c.get("accuracy") and "max_ulp" in c["accuracy"]:
                    row[f"{tag}_accuracy"] = c["accuracy"]
            elif c is not None:
                row[f"{tag}_skipped"] = c.get("reason", "")
        if "float16_ms" in row and "float32_ms" in row:
            ratio = row["float32_ms"] / row["float16_ms"]
            row["speedup_fp16"] = ratio
            if "bfloat16_ms" in row:
                row["speedup_bf16"] = row["float32_ms"] / row["bfloat16_ms"]
            row["agrees_with_2x"] = ratio >= 1.7
            row["why"] = _why(row, c16, c32, conv)
        out.append(row)
    return out


def _why(row, c16, c32, conv):
    ratio = row["speedup_fp16"]
    f32 = c32.get("fraction_of_limit")
    ns16 = c16["timing"]["median_ns"] / c16["elements"]
    ns32 = c32["timing"]["median_ns"] / c32["elements"]
    parts = []
    if ratio >= 1.7:
        if f32 is not None and f32 >= 1 / MEMORY_BOUND_WITHIN:
            return (f"agrees with the chapter's ~2x: float32 softmax runs at {f32:.0%} of copy bandwidth "
                    "(memory-bound), so halving the bytes roughly halves the time")
        alloc = (c32.get("prealloc") or {}).get("allocation_fraction")
        s = "close to the chapter's ~2x, but not for its reason"
        if f32 is not None:
            s += f": float32 softmax runs at only {f32:.0%} of copy bandwidth (not memory-bound)"
        if alloc is not None:
            s += (f"; allocating the fresh output (first-touch page faults, proportional to bytes) is "
                  f"{alloc:.0%} of the float32 time, and that part halves in float16")
        return s
    if f32 is not None:
        bound = 1 / (1 - min(f32, 1.0) / 2)
        parts.append(f"float32 softmax moves its bytes at only {f32:.0%} of this machine's copy bandwidth, so "
                     f"memory is at most {min(f32, 1):.0%} of its time and halving the bytes can give at most "
                     f"{bound:.2f}x")
    if ratio < 1:
        parts.append(f"float16 is slower per element ({ns16:.2f} vs {ns32:.2f} ns): the float16 kernel's "
                     "arithmetic, not memory, sets the time")
        if row["backend"] in ("numpy", "scipy"):
            s = ("NumPy's float16 loops for max, sum, subtract and divide convert element by element "
                 "through float32 (only exp has a SIMD float16 loop on this CPU, see the exp table)")
            if conv.get("subnormal") and conv.get("normal"):
                s += (f", and rounding a result that is subnormal in float16 costs "
                      f"{conv['subnormal']:.1f} ns vs {conv['normal']:.2f} ns for a normal one (measured); "
                      f"softmax outputs average 1/V, below float16's smallest normal 6.1e-5 once V > 16,384")
            parts.append(s)
    elif ratio < 1.7:
        parts.append(f"float16 is {ratio:.2f}x faster: less than the chapter's ~2x because exp and the "
                     "reductions, computed in float32 inside the kernel, dominate on this CPU")
    return "; ".join(parts)


def seed_section(result, batch=16, seq=1024, vocab=50_257, gpu_mb=40_000, budget_fraction=0.25) -> dict:
    limits = result["limits"]
    dram = bandwidth.reference_gbps(limits, "cpu", "DRAM")
    l2 = bandwidth.reference_gbps(limits, "cpu", "L2")
    here = []
    rates = [(bandwidth.exp_rate(limits, impl, "float32"), impl) for impl in ("numpy.exp", "torch.exp")]
    rates = [r for r in rates if r[0]]
    if rates:
        rate, impl = max(rates)
        for lvl, bw in (("DRAM", dram), ("L2", l2)):
            if bw:
                here.append(seed.roofline_here(30_000, bw, rate, label=f"{impl} float32 (fastest exp), {lvl} copy bandwidth"))
    return {"memory": seed.memory(batch, seq, vocab, gpu_mb, budget_fraction),
            "roofline_chapter": seed.roofline_chapter(), "roofline_here": here}


def _sampled_softmax(cfg, say) -> dict:
    """The chapter's sampled-softmax speed-up, measured (:mod:`.sampled`; NumPy and torch on CPU)."""
    from . import sampled

    backends = [b for b in ("numpy", "torch") if b in cfg.backends]
    if not backends:
        return {"rows": [], "verdict": "not measured (neither numpy nor torch among --backend)"}
    try:
        return sampled.measure(backends, batch=C.SAMPLED_SOFTMAX_QUICK_BATCH if cfg.quick else None,
                               budget_s=min(cfg.budget_s, 0.5), progress=say)
    except Exception as e:  # noqa: BLE001 - the cells' results stand without it
        return {"rows": [], "verdict": f"not measured: {type(e).__name__}: {e}"}


def summarize(result) -> dict:
    cells = result["cells"]
    by = {}
    for c in cells:
        by[c["status"]] = by.get(c["status"], 0) + 1
    return {"cells": len(cells), "by_status": by,
            "skipped": [{k: c.get(k) for k in ("backend", "device", "dtype", "shape", "op", "reason")}
                        for c in cells if c["status"] != "ok"]}
