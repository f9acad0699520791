"""Mixed precision: the torch ops under ``torch.autocast``, and the hand-written upcast patterns.

Variants (the torch backend's ``extra_ops()``; ``Op.dtypes`` says which groups hold them):

* float32 groups: ``autocast_bfloat16`` / ``autocast_float16`` -- the primary op under
  ``torch.autocast(device_type, dtype=...)`` on float32 inputs (a loss called inside an autocast
  region), judged against the exact value of those float32 inputs;
* float16 / bfloat16 groups: ``autocast`` -- the op under autocast of the inputs' own dtype (logits
  that came out of an autocast matmul); ``upcast`` -- ``op(x.float()).to(x.dtype)``, the common
  hand-written pattern; softmax and log_softmax also ``dtype_float32`` --
  ``torch.softmax(z, dim=-1, dtype=torch.float32)`` (pytorch issue 123911). A float32 result is
  rounded once to the group's dtype by the run (its notes say so).

Each variant names ``native`` as its baseline (the run's error ratio against the eager op on the
same inputs) and carries in its note the dtype the op *returned* and the dtype it *computed* in,
probed once on a fixed input (:func:`probe_dtypes`): autocast's result compared bit for bit with
the op on the inputs cast to float32 and on the inputs cast to the autocast dtype. The default
profile audits :data:`LOSSES`; thorough every quantity with a torch op. On CPU autocast leaves
every one of these ops in float32 for float32 inputs; on bfloat16 inputs it upcasts the losses
(cross-entropy, NLL, BCE, KL) to float32 but not softmax, log_softmax or logsumexp.
Nothing here imports torch at module import time.
"""
from __future__ import annotations

import numpy as np

from . import Op

__all__ = ["LOSSES", "LOW", "autocast_ops", "probe_dtypes", "sample_args", "run_autocast"]

LOW = ("bfloat16", "float16")
LOSSES = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss", "binary_cross_entropy",
          "binary_cross_entropy_with_logits", "kl_divergence", "label_smoothing_cross_entropy", "distillation_loss")
UPCAST_PATTERNS = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "binary_cross_entropy_with_logits")


def _device_type(args):
    import torch

    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
    return "cpu"


def run_autocast(fn, dtype_name, *args):
    """``fn(*args)`` inside ``torch.autocast(<the arguments' device type>, dtype=<dtype_name>)``
    (``with torch.autocast("cpu", dtype=torch.bfloat16): fn(*args)`` on CPU tensors)."""
    import torch

    with torch.autocast(_device_type(args), dtype=getattr(torch, dtype_name)):
        return fn(*args)


def _autocast_fn(fn, dt):
    def call(*args):
        return run_autocast(fn, dt, *args)
    return call


def _upcast_fn(fn):
    def call(*args):
        import torch

        low = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
        up = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        out = fn(*up)
        return out.to(low) if low is not None else out
    return call


# ---------------------------------------------------------------- which dtype it computed in

# values with more bits than bfloat16 / float16 hold: casting them to either changes them
_ROW = [0.31234567, -1.68765432, 2.21987654, 0.90612345, -0.43798765]
_SAMPLE = {"logits": [_ROW], "real": [_ROW], "mu": [_ROW], "logvar": [_ROW],
           "prob": [[0.18712345, 0.68798765, 0.51234567, 0.90687654, 0.31298765]],
           "target01": [[0.18712345, 0.68798765, 0.51234567, 0.90687654, 0.31298765]]}
_SCALARS = {"temperature": 2.0, "eps": 0.125, "beta": 0.5}


def sample_args(q):
    """A fixed small float64 input of quantity ``q`` (rows of 5; labels; scalars), or None when
    an argument kind has no sample here."""
    out = []
    rows = np.array([[0.10123457, 0.30198765, 0.05012345, 0.34987654, 0.19677779]])
    for a in q.args:
        if a.kind in _SAMPLE:
            out.append(np.array(_SAMPLE[a.kind]))
        elif a.kind == "probs":
            out.append(rows if not out or a.name == q.args[0].name else rows[:, ::-1].copy())
        elif a.kind == "logprobs":
            out.append(np.log(rows))
        elif a.kind == "label":
            out.append(np.array([3], dtype=np.int64))
        elif a.kind in _SCALARS:
            out.append(_SCALARS[a.kind])
        else:
            return None
    return out


def probe_dtypes(fn, q, input_dtype, autocast_dtype) -> dict:
    """``{"returned", "computed"}`` of ``fn`` under autocast on a fixed input in ``input_dtype``:
    computed is ``float32`` when the result equals ``fn`` on the inputs cast to float32 (bit for
    bit, in the returned dtype), ``autocast_dtype`` when it equals ``fn`` on the inputs cast to
    that dtype, ``float32 or <dtype> (...)`` when both, ``mixed (...)`` when neither (e.g. ``q.log()``
    in bfloat16, then ``F.kl_div`` upcast); ``error`` when it raised."""
    import torch

    args = sample_args(q)
    if args is None:
        return {"returned": "unknown", "computed": "unknown", "error": "no sample input for this quantity"}

    base = [v if not isinstance(v, np.ndarray) else torch.from_numpy(v.copy()) if v.dtype.kind != "f"
            else torch.from_numpy(v.astype(np.float32)).to(getattr(torch, input_dtype)) for v in args]

    def cast(dt):   # the same input values, cast to dt (exact for float32)
        return [v.to(getattr(torch, dt)) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in base]

    try:
        got = run_autocast(fn, autocast_dtype, *base)
        ret = str(got.dtype).replace("torch.", "")
        ways = []
        for dt in ("float32", autocast_dtype):
            ref = fn(*cast(dt)).to(got.dtype)
            if torch.equal(torch.nan_to_num(ref), torch.nan_to_num(got)):
                ways.append(dt)
    except Exception as e:  # noqa: BLE001 - the op refusing autocast or the sample
        return {"returned": "unknown", "computed": "unknown", "error": f"{type(e).__name__}: {e}"}
    if len(ways) == 2:
        computed = f"float32 or {autocast_dtype} (the same bits on the probe input)"
    else:
        computed = ways[0] if ways else f"mixed (neither all float32 nor all {autocast_dtype})"
    return {"returned": ret, "computed": computed}


def _note(fn, q, input_dtype, dt):
    p = probe_dtypes(fn, q, input_dtype, dt)
    if p.get("error"):
        return f"autocast({dt}) on {input_dtype} inputs: probe failed ({p['error']})"
    return f"autocast({dt}) on {input_dtype} inputs: returned {p['returned']}, computed in {p['computed']} (probed)"


def autocast_ops(eager: dict) -> dict:
    """``{quantity: [Op, ...]}``: the autocast variants and upcast patterns of the primary op of
    each quantity of ``eager`` (``{quantity: [Op, ...]}``), with ``profiles``, ``dtypes`` and
    ``baseline``."""
    from .. import quantities as Q

    out = {}
    for qname, ops in eager.items():
        try:
            q = Q.get(qname)
        except (KeyError, ValueError):
            continue
        if not ops or not q.float_args:
            continue
        op = ops[0]
        profiles = () if qname in LOSSES else ("thorough",)
        names = ", ".join(q.arg_names)
        add = out.setdefault(qname, []).append
        for dt in LOW:
            add(Op(f"autocast_{dt}", _autocast_fn(op.fn, dt), op.native,
                   f"infoaudit.backends.autocast.run_autocast(lambda {names}: {op.call}, {dt!r}, {names})",
                   _note(op.fn, q, "float32", dt), profiles=profiles, baseline=op.variant, dtypes=("float32",)))
        for dt in LOW:
            add(Op("autocast", _autocast_fn(op.fn, dt), op.native,
                   f"infoaudit.backends.autocast.run_autocast(lambda {names}: {op.call}, {dt!r}, {names})",
                   _note(op.fn, q, dt, dt), profiles=profiles, baseline=op.variant, dtypes=(dt,)))
        if qname in UPCAST_PATTERNS:
            add(Op("upcast", _upcast_fn(op.fn), op.native, f"({op.call} with every float argument .float()).to(dtype)",
                   "the hand-written pattern: compute in float32, cast the result back", profiles=profiles,
                   baseline=op.variant, dtypes=LOW))
        if qname in ("softmax", "log_softmax"):
            import torch

            f = getattr(torch, qname)
            add(Op("dtype_float32", lambda z, f=f: f(z, dim=-1, dtype=torch.float32), True,
                   f"torch.{qname}(z, dim=-1, dtype=torch.float32)",
                   "returns float32 (rounded once to the inputs' dtype by the audit)", profiles=profiles,
                   baseline=op.variant, dtypes=LOW))
    return out
