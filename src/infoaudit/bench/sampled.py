"""Sampled vs full softmax cross-entropy, timed side by side (the seed chapter's "≈ 20×" claim).

The chapter: full softmax O(V) = 100,000 operations per token, sampled O(K + 1) = 5,001, so a
speed-up of 100,000 / 5,001 ≈ 20×. Two settings, each timed for the full and the sampled loss in
the same process, one after the other, on the same inputs (float32, CPU):

* ``loss``: the logits z (batch, V) are given; full = the registry's ``cross_entropy`` op of the
  backend (NumPy: max-shifted logsumexp - z_y; torch: ``F.cross_entropy``), sampled = the
  registry's ``sampled_softmax_cross_entropy`` op (gather of the K + 1 corrected logits, then
  logsumexp); per-row samples (batch, K) drawn from a Zipf proposal, log_q over the vocabulary.
* ``layer``: the output layer included, as training runs it: hidden states h (batch, d) and the
  output embedding W (V, d); full = cross-entropy of h W^T, sampled = TF's sampled_softmax_loss
  shape: K samples shared by the batch, logits h W_S^T of the sampled rows plus the true logits
  <h, W_y>, log-proposal correction, accidental hits masked, logsumexp - true term.

Timing is :func:`.timing.time_call` (median of adaptive samples). The ratio is full / sampled
median time; the chapter's figure counts operations, so memory traffic and fixed per-call costs
show up here as a ratio away from 20.
"""
from __future__ import annotations

import numpy as np

from . import timing
from .cells import SAMPLED_SOFTMAX

__all__ = ["measure", "CHAPTER_RATIO"]

CHAPTER_RATIO = 100_000 / 5_001


def _inputs(batch, vocab, k, d, seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((batch, vocab), dtype=np.float32) * 2).astype(np.float32)
    y = rng.integers(0, vocab, size=batch, dtype=np.int64)
    lw = -np.log(np.arange(1, vocab + 1, dtype=np.float64))
    log_q1 = lw - np.log(np.sum(np.exp(lw)))
    q = np.exp(log_q1)
    samples = rng.choice(vocab, size=(batch, k), p=q / q.sum()).astype(np.int64)
    shared = rng.choice(vocab, size=k, p=q / q.sum()).astype(np.int64)
    log_q = np.broadcast_to(log_q1.astype(np.float32), (batch, vocab)).copy()
    h = rng.standard_normal((batch, d), dtype=np.float32)
    W = (rng.standard_normal((vocab, d), dtype=np.float32) / np.sqrt(d)).astype(np.float32)
    return {"z": z, "y": y, "samples": samples, "log_q": log_q, "log_q1": log_q1.astype(np.float32),
            "shared": shared, "h": h, "W": W}


def _numpy_layer(x):
    from ..backends import numpy_backend as nb

    h, W, y, S, lq = x["h"], x["W"], x["y"], x["shared"], x["log_q1"]

    def full():
        return nb.cross_entropy(h @ W.T, y)

    def sampled():
        true = np.sum(h * W[y], axis=-1) - lq[y]
        s = h @ W[S].T - lq[S]
        s = np.where(S[None, :] == y[:, None], np.float32(-np.inf), s)
        a = np.concatenate([true[:, None], s], axis=-1)
        return nb.logsumexp(a) - a[:, 0]
    return full, sampled


def _torch_layer(x):
    import torch
    import torch.nn.functional as F

    h, W, y, S, lq = (torch.from_numpy(x[k]) for k in ("h", "W", "y", "shared", "log_q1"))

    def full():
        return F.cross_entropy(h @ W.T, y, reduction="none")

    def sampled():
        true = (h * W[y]).sum(-1) - lq[y]
        s = (h @ W[S].T - lq[S]).masked_fill(S[None, :] == y[:, None], float("-inf"))
        a = torch.cat([true[:, None], s], dim=-1)
        return torch.logsumexp(a, -1) - a[:, 0]
    return full, sampled


def measure(backends=("numpy", "torch"), batch=None, vocab=None, k=None, d=None, budget_s=0.5, seed=0,
            progress=None) -> dict:
    """Time full and sampled cross-entropy for each backend (see the module docstring)."""
    from .cells import load_backend

    cfg = dict(SAMPLED_SOFTMAX)
    cfg.update({key: v for key, v in (("batch", batch), ("vocab", vocab), ("k", k), ("d", d)) if v})
    x = _inputs(cfg["batch"], cfg["vocab"], cfg["k"], cfg["d"], seed)
    rows = []
    for name in backends:
        h = load_backend(name)
        if not h.ok:
            rows.append({"backend": name, "status": "skipped", "reason": h.reason})
            continue
        mod = h.module
        ops = mod.ops()
        full_op, samp_op = ops["cross_entropy"][0], ops["sampled_softmax_cross_entropy"][0]
        args_full = [mod.to_backend(x["z"]), mod.to_backend(x["y"])]
        args_samp = [mod.to_backend(x[key]) for key in ("z", "y", "samples", "log_q")]
        settings = {"loss": (lambda: full_op.fn(*args_full), lambda: samp_op.fn(*args_samp),
                             full_op.call, samp_op.call)}
        layer = {"numpy": _numpy_layer, "torch": _torch_layer}.get(name)
        if layer:
            f, s = layer(x)
            settings["layer"] = (f, s, "cross_entropy(h @ W.T, y)", "TF-style: shared samples, h @ W[S].T")
        for setting, (f, s, fcall, scall) in settings.items():
            tf = timing.time_call(f, budget_s=budget_s)
            ts = timing.time_call(s, budget_s=budget_s)
            row = {"backend": name, "version": h.version, "setting": setting, "status": "ok",
                   "full_call": fcall, "sampled_call": scall, "full_ms": tf.median_ns / 1e6,
                   "sampled_ms": ts.median_ns / 1e6, "full_iqr_ms": [tf.p25_ns / 1e6, tf.p75_ns / 1e6],
                   "sampled_iqr_ms": [ts.p25_ns / 1e6, ts.p75_ns / 1e6], "ratio": tf.median_ns / ts.median_ns,
                   "notes": tf.notes + ts.notes}
            rows.append(row)
            if progress:
                progress(f"sampled softmax {name} {setting}: full {row['full_ms']:.3g} ms, sampled "
                         f"{row['sampled_ms']:.3g} ms, ratio {row['ratio']:.1f}x")
    return {"config": {**cfg, "dtype": "float32", "device": "cpu", "chapter_ratio": CHAPTER_RATIO}, "rows": rows,
            "verdict": verdict(rows)}


def verdict(rows) -> str:
    """The chapter's ≈ 20× against the measured ratios (within a factor 1.5 counts as agreeing)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return "not measured (no backend available)"
    parts = [f"{r['backend']} {r['setting']} {r['ratio']:.1f}x" for r in ok]
    agree = [r for r in ok if CHAPTER_RATIO / 1.5 <= r["ratio"] <= CHAPTER_RATIO * 1.5]
    head = ("agrees with the chapter's ≈ 20×" if len(agree) == len(ok) else
            "the chapter's ≈ 20× holds only for " + ", ".join(f"{r['backend']} {r['setting']}" for r in agree)
            if agree else "the chapter's ≈ 20× is not what this machine measures")
    return f"{head} (measured full/sampled time: {'; '.join(parts)}; agreement = within a factor 1.5 of 20.0)"
