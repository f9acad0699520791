"""The seed chapter's sampled-softmax bias claim, measured: expected sampled loss and gradient
against the full cross-entropy and its gradient, as the number of samples K grows.

Model (seeded, stated): V = 100,000 classes; the proposal q is the unigram Zipf law q_j ∝ 1/(j+1);
the model's logits are z_j = 1.1 log q_j + e_j with e_j ~ N(0, 1) (a context distribution
correlated with, but not equal to, the unigram; if p were q every importance weight would be
equal). Targets y are the classes of model-probability rank 1, 100 and 10,000.

Estimator (what ``sampled_softmax_cross_entropy`` computes, with TF's ``sampled_softmax_loss``
correction): K samples drawn from q with replacement, log_q = log(K q_j) (the expected count of
class j), accidental hits of y removed, duplicates kept:

    L_K = -a_y + log(e^{a_y} + sum_s e^{a_s}),   a_j = z_j - log(K q_j),
    dL_K/dz = sum_t p~_t e_{j_t} - e_y,          p~ = softmax of the K + 1 terms.

Expectations are seeded Monte Carlo means over R independent draws of the K samples, in float64
NumPy, each with its standard error (sd / sqrt(R)). The targets are exact: the full
cross-entropy logsumexp(z) - z_y from :func:`infoaudit.reference.evaluate` (certified float64
fast path, correctly rounded), the full gradient softmax(z) - e_y in float64 (relative error
~1e-16, far below every Monte Carlo error stated).

Gradient bias: b = ||E[g_K] - g|| / ||g||. The plain estimate ||mean(g_K) - g||^2 carries the
Monte Carlo noise tr(Cov)/R; ``grad_rel_bias`` subtracts the estimated noise (clipped at 0) and
``grad_rel_noise`` states the noise level sqrt(tr(Cov)/R) / ||g||: a bias below it is not
resolved. ``negligible`` (stated, decided per K and target): relative loss bias
|E[L_K] - CE| / CE <= 1% and gradient bias b <= 1%.

Asymptotics (what the numbers show): sum_s e^{a_s} -> Z (1 - p_y) and e^{a_y} = Z p_y / (K q_y)
-> 0, so L_K -> log(1 + (1 - p_y) K q_y / p_y), not -log p_y: the sampled loss *value* is not an
estimate of the full cross-entropy (its offset log(K q_y) grows with K); the gradient tends to
p_j / (1 - p_y) off the target and to -1 at it (the removed accidental hits carried the target's
own p_y): a bias of relative size about p_y / (1 - p_y) that no K removes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["VOCAB", "KS", "TARGET_RANKS", "REPLICATES", "NEGLIGIBLE", "model", "sampled_loss_and_grad",
           "measure", "verdict", "summary", "table"]

VOCAB = 100_000
KS = (10, 100, 1_000, 5_000, 10_000)
TARGET_RANKS = (1, 100, 10_000)
REPLICATES = {"quick": 16, "default": 64, "thorough": 1_024}
NEGLIGIBLE = 0.01   # relative loss bias and relative gradient bias, both
SEED = 20261207


def model(vocab=VOCAB, seed=SEED):
    """(z, log_q, p): the model's logits, the unigram log-proposal, the model's softmax (float64)."""
    rng = np.random.default_rng(seed)
    lw = -np.log(np.arange(1, vocab + 1, dtype=np.float64))
    log_q = lw - np.log(np.sum(np.exp(lw)))
    z = 1.1 * log_q + rng.standard_normal(vocab)
    p = np.exp(z - z.max())
    p /= p.sum()
    return z, log_q, p


def sampled_loss_and_grad(z, y, samples, log_q, vocab=None):
    """(L_K, dL_K/dz as a dense float64 vector) for one draw of samples; log_q as passed to the
    loss (here log(K q)). Accidental hits removed, duplicates kept."""
    idx = np.concatenate([[y], samples])
    a = z[idx] - log_q[idx]
    a[1:][samples == y] = -np.inf
    m = a.max()
    e = np.exp(a - m)
    s = e.sum()
    loss = m + np.log(s) - a[0]
    g = np.bincount(idx, weights=e / s, minlength=vocab or z.size)
    g[y] -= 1.0
    return float(loss), g


def measure(profile="default", ks=KS, ranks=TARGET_RANKS, vocab=VOCAB, replicates=None, seed=SEED) -> dict:
    """Monte Carlo of E[L_K] and E[dL_K/dz] for every K and target rank; see the module docstring.

    Returns {"config": ..., "rows": [one dict per (rank, K)]} with loss_mean, loss_se, ce (exact),
    loss_bias, loss_rel_bias (+ its se), grad_rel_bias, grad_rel_noise, grad_cos, target_bias
    (E[g_y] - g_y) and negligible."""
    from . import reference

    R = int(replicates or REPLICATES[profile])
    z, log_q, p = model(vocab, seed)
    q = np.exp(log_q)
    cdf = np.cumsum(q)
    cdf /= cdf[-1]
    order = np.argsort(-p, kind="stable")
    rng = np.random.default_rng(seed + 1)
    rows = []
    for rank in ranks:
        y = int(order[rank - 1])
        ce = float(reference.evaluate("cross_entropy", z[None, :], np.array([y])).hi[0])
        g_full = p.copy()
        g_full[y] -= 1.0
        gnorm = float(np.linalg.norm(g_full))
        for K in ks:
            lq = log_q + np.log(K)
            losses = np.empty(R)
            gsum = np.zeros(vocab)
            gsq = np.zeros(vocab)
            for r in range(R):
                samples = np.minimum(np.searchsorted(cdf, rng.random(K), side="right"), vocab - 1)
                losses[r], g = sampled_loss_and_grad(z, y, samples, lq, vocab)
                gsum += g
                gsq += g * g
            gmean = gsum / R
            var = np.maximum(gsq / R - gmean * gmean, 0.0) * R / max(R - 1, 1)
            noise2 = float(var.sum()) / R
            d2 = float(np.sum((gmean - g_full) ** 2))
            lm, lse_ = float(losses.mean()), float(losses.std(ddof=1) / np.sqrt(R))
            rel = (lm - ce) / ce
            gb = float(np.sqrt(max(d2 - noise2, 0.0))) / gnorm
            rows.append({
                "rank": rank, "y": y, "p_y": float(p[y]), "q_y": float(q[y]), "K": K, "R": R,
                "ce": ce, "loss_mean": lm, "loss_se": lse_, "loss_bias": lm - ce, "loss_rel_bias": rel,
                "loss_rel_se": lse_ / ce, "grad_rel_bias": gb, "grad_rel_noise": float(np.sqrt(noise2)) / gnorm,
                "grad_rel_raw": float(np.sqrt(d2)) / gnorm,
                "grad_cos": float(gmean @ g_full / (np.linalg.norm(gmean) * gnorm)),
                "target_bias": float(gmean[y] - g_full[y]),
                "target_bias_se": float(np.sqrt(var[y] / R)),
                "negligible": bool(abs(rel) <= NEGLIGIBLE and gb <= NEGLIGIBLE),
            })
    return {"config": {"vocab": vocab, "ks": list(ks), "ranks": list(ranks), "replicates": R, "seed": seed,
                       "proposal": "Zipf q_j ∝ 1/(j+1), sampled with replacement, log_q = log(K q)",
                       "model": "z = 1.1 log q + N(0, 1) noise", "negligible": NEGLIGIBLE},
            "rows": rows}


def _decreasing(vals, ses):
    """The last value is below the first by more than 2 combined standard errors, and no step
    goes up by more than 2 of them."""
    two = lambda a, b: 2 * float(np.hypot(a, b))  # noqa: E731
    if not vals[-1] < vals[0] - two(ses[0], ses[-1]):
        return False
    return all(b <= a + two(sa, sb) for a, sa, b, sb in zip(vals, ses, vals[1:], ses[1:]))


def verdict(result) -> dict:
    """The claim's three parts, decided from ``measure``'s rows (per target rank)."""
    rows = result["rows"]
    out = {}
    for rank in result["config"]["ranks"]:
        rs = sorted((r for r in rows if r["rank"] == rank), key=lambda r: r["K"])
        gb = [r["grad_rel_bias"] for r in rs]
        gn = [r["grad_rel_noise"] for r in rs]
        lb = [abs(r["loss_rel_bias"]) for r in rs]
        ls = [r["loss_rel_se"] for r in rs]
        last = rs[-1]
        out[rank] = {
            "grad_decreases": _decreasing(gb, gn), "loss_decreases": _decreasing(lb, ls),
            "grad_nonzero_at_max_K": last["grad_rel_bias"] > 2 * last["grad_rel_noise"],
            "negligible_at_max_K": last["negligible"],
            "grad_negligible_at_max_K": last["grad_rel_bias"] <= NEGLIGIBLE,
        }
    return out


def table(result) -> dict:
    """{"head": [...], "rows": [[str, ...]]}: one row per (target rank, K), for the report."""
    head = ["target rank", "p_y", "K", "E[L_K] ± se", "CE (exact)", "loss bias", "gradient bias (noise)",
            "cos(E g_K, g)", "E g_y - g_y", "negligible"]
    rows = [[f"{r['rank']:,}", f"{r['p_y']:.3g}", f"{r['K']:,}", f"{r['loss_mean']:.4f} ± {r['loss_se']:.4f}",
             f"{r['ce']:.4f}", f"{r['loss_rel_bias']:+.1%}",
             (f"{r['grad_rel_bias']:.2%} ({r['grad_rel_noise']:.2%})" if r["grad_rel_bias"] > 0
              else f"< noise ({r['grad_rel_noise']:.2%})"),
             f"{r['grad_cos']:.5f}", f"{r['target_bias']:+.4f}", "yes" if r["negligible"] else "no"]
            for r in result["rows"]]
    return {"head": head, "rows": rows}


def summary(result) -> str:
    """One line per target rank: loss and gradient bias at the smallest and largest K."""
    parts = []
    for rank in result["config"]["ranks"]:
        rs = sorted((r for r in result["rows"] if r["rank"] == rank), key=lambda r: r["K"])
        a, b = rs[0], rs[-1]
        parts.append(f"target rank {rank} (p_y {a['p_y']:.2g}): loss bias {a['loss_rel_bias']:+.1%} at K={a['K']:,} "
                     f"-> {b['loss_rel_bias']:+.1%} (±{b['loss_rel_se']:.1%}) at K={b['K']:,}; gradient bias "
                     f"{a['grad_rel_bias']:.1%} -> {b['grad_rel_bias']:.2%} (noise {b['grad_rel_noise']:.2%}), "
                     f"cos {b['grad_cos']:.4f}")
    return "; ".join(parts)
