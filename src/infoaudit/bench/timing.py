"""Adaptive wall-clock timing of one callable: warm-up, inner loops, a sample budget.

Every figure is from ``time.perf_counter_ns``. The protocol for one cell:

1. warm-up: one call (for JAX this compiles; its excess over a steady call is reported as
   compile time), then a second call whose time sizes the loop;
2. ``inner`` calls per sample so a sample lasts at least ``min_sample_s`` (timer resolution;
   calls over 0.1 ms are timed one by one, so a stall of a busy machine spoils one sample, not all);
3. ``samples`` samples within ``budget_s`` (at least ``min_samples``; a call longer than
   ``max_call_s`` gets a single timed call, sized by the first call, and the result says so);
4. ``sync(out)`` after each call (JAX ``block_until_ready``; nothing on CPU NumPy) and
   ``barrier()`` around each sample (``torch.cuda.synchronize``), so asynchronous work is
   inside the timed region.

The median of the per-call times is the headline; the spread is the interquartile range.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field

__all__ = ["Timing", "time_call"]


@dataclass
class Timing:
    median_ns: float
    p25_ns: float
    p75_ns: float
    min_ns: float
    max_ns: float
    samples: int
    inner: int
    first_call_ns: float          # the first (cold / compiling) call
    warm_call_ns: float           # the second call, used to size the loop
    total_s: float                # wall time spent on this cell, warm-up included
    notes: list = field(default_factory=list)
    output: object = field(default=None, repr=False, compare=False)  # the warm call's result

    @property
    def iqr_rel(self) -> float:
        return (self.p75_ns - self.p25_ns) / self.median_ns if self.median_ns > 0 else 0.0

    @property
    def compile_ns(self) -> float:
        """Excess of the first call over a steady call (JIT compilation, lazy init, page-in)."""
        return max(0.0, self.first_call_ns - self.median_ns)

    def as_dict(self) -> dict:
        d = asdict(self.__class__(**{**self.__dict__, "output": None}))
        d.pop("output", None)
        d["iqr_rel"] = self.iqr_rel
        d["compile_ns"] = self.compile_ns
        return d


def _quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _noop(*_):
    return None


def time_call(fn, *, sync=None, barrier=None, budget_s=0.5, max_call_s=3.0, min_samples=3,
              max_samples=50, min_sample_s=1e-4, keep_output=False, clock=time.perf_counter_ns) -> Timing:
    """Time ``fn()`` adaptively (see module doc). ``sync(out)`` waits for the result."""
    sync = sync or _noop
    barrier = barrier or _noop
    start = clock()

    def one():
        barrier()
        t0 = clock()
        out = fn()
        sync(out)
        barrier()
        return clock() - t0, out

    first, out = one()
    if first > max_call_s * 1e9:
        warm = first                     # a long call: the first call sizes the loop
    else:
        del out
        warm, out = one()
    kept = out if keep_output else None
    del out
    est = max(warm, 1)
    notes = []
    inner = max(1, math.ceil(min_sample_s * 1e9 / est))
    per_sample = est * inner
    if est > max_call_s * 1e9:
        samples = 1
        notes.append(f"one timed call only: a call takes {est / 1e9:.2f} s (cap {max_call_s:g} s per call)")
    else:
        samples = int(budget_s * 1e9 // per_sample)
        samples = max(min_samples, min(max_samples, samples))
    times = []
    t_loop = clock()
    for k in range(samples):
        if k >= min_samples and clock() - t_loop > 2 * budget_s * 1e9:
            notes.append(f"stopped after {k} of {samples} samples: calls ran slower than the warm-up "
                         "(a busy machine)")
            samples = k
            break
        barrier()
        t0 = clock()
        for _ in range(inner):
            out = fn()
            sync(out)
        barrier()
        times.append((clock() - t0) / inner)
        del out
    if samples < 5:
        notes.append(f"{samples} samples (time budget): median of few samples")
    return Timing(
        median_ns=statistics.median(times), p25_ns=_quantile(times, 0.25), p75_ns=_quantile(times, 0.75),
        min_ns=min(times), max_ns=max(times), samples=samples, inner=inner, first_call_ns=float(first),
        warm_call_ns=float(warm), total_s=(clock() - start) / 1e9, notes=notes, output=kept)
