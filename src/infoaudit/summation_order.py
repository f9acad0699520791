"""Which terms a row reduction adds first: the summation-order probe of FPRev (USENIX ATC'25).

For a row of n terms, put ``+M`` at position i, ``-M`` at position j and 1 everywhere else, with
``M`` so large that ``M + k == M`` for every k <= n in the dtype. In a summation tree the ones
added to ``+M`` or ``-M`` before the two meet are swamped; ``+M`` and ``-M`` cancel exactly at
their lowest common ancestor (LCA), and the ones added after it are counted exactly. So the
result is ``n - size(LCA(i, j))``, the number of leaves outside the subtree where i and j meet.
All n(n-1)/2 pairs go in one batch (one row each, reduced along the last axis); the sizes
determine the tree (the root's children are the classes of "meet below the root"; recursively).

:func:`describe` names the tree: ``sequential`` (left to right), ``L lanes (stride L)`` (a
vectorised loop with L accumulators, e.g. NumPy's pairwise sum keeps 8), ``blocks of B``,
``pairwise`` (balanced), with how the parts are combined; ``not a plain tree of additions``
when the sizes contradict every tree (a compensated or wider-accumulator sum). :data:`TARGETS`
probes the plain row sum ``x.sum(-1)`` of NumPy, torch eager, ``torch.compile`` (Inductor) and
``jax.jit``: the reduction inside logsumexp, softmax's normaliser and the entropies (their
positive terms cannot cancel, so the fused op itself cannot be probed this way; Inductor
generates logsumexp's reduction loop like its sum's, eager torch calls the same sum kernel).
"""
from __future__ import annotations

import math

import numpy as np

from .dtypes import fmt

__all__ = ["pair_inputs", "lca_sizes", "tree_from_sizes", "describe", "probe", "TARGETS", "probe_all", "panel"]


def _big(n, dtype) -> float:
    """M with M + k == M for k <= n (ulp(M) > 2n) and M exactly representable."""
    p = fmt(dtype).precision
    return float(2.0 ** (p + 2 + math.ceil(math.log2(max(n, 2)))))


def pair_inputs(n: int, dtype="float32"):
    """(rows, pairs): one row of n terms per pair i < j (+M at i, -M at j, ones elsewhere)."""
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    m = _big(n, dtype)
    x = np.ones((len(pairs), n), dtype=np.float64)
    for r, (i, j) in enumerate(pairs):
        x[r, i] = m
        x[r, j] = -m
    return x, pairs


def lca_sizes(sum_rows, n: int, dtype="float32") -> np.ndarray:
    """The n x n matrix of LCA subtree sizes of ``sum_rows`` (float64 rows -> row sums; it casts
    to ``dtype`` itself), 0 on the diagonal."""
    x, pairs = pair_inputs(n, dtype)
    s = np.asarray(sum_rows(x), dtype=np.float64).reshape(-1)
    out = np.zeros((n, n))
    for (i, j), v in zip(pairs, s):
        out[i, j] = out[j, i] = n - v
    return out


def tree_from_sizes(sizes: np.ndarray, leaves=None):
    """The summation tree (nested tuples of leaf indices) the LCA sizes describe, or None when
    they describe no tree (a pair whose LCA size does not match the subtree found)."""
    leaves = list(range(sizes.shape[0])) if leaves is None else list(leaves)
    if len(leaves) == 1:
        return leaves[0]
    k = len(leaves)
    # i, j are in the same child of this node when they meet below it
    parent = {a: a for a in leaves}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for x in range(k):
        for y in range(x + 1, k):
            a, b = leaves[x], leaves[y]
            if sizes[a, b] < k:
                parent[find(a)] = find(b)
            elif sizes[a, b] != k:
                return None
    groups = {}
    for a in leaves:
        groups.setdefault(find(a), []).append(a)
    parts = sorted(groups.values(), key=lambda g: g[0])
    if len(parts) == 1:
        return None   # no pair meets at this node: inconsistent
    kids = [tree_from_sizes(sizes, g) for g in parts]
    if any(c is None for c in kids):
        return None
    return tuple(kids)


def _leaves(t):
    return [t] if isinstance(t, int) else [x for c in t for x in _leaves(c)]


def _is_sequential(t) -> bool:
    """A left comb over increasing leaves: ((((a, b), c), d) ...)."""
    if isinstance(t, int):
        return True
    if len(t) != 2 or not isinstance(t[1], int):
        return len(t) == 2 and isinstance(t[0], int) and isinstance(t[1], int)
    return _is_sequential(t[0]) and max(_leaves(t[0])) < t[1]


def _is_balanced(t) -> bool:
    if isinstance(t, int):
        return True
    if len(t) != 2:
        return False
    a, b = (len(_leaves(c)) for c in t)
    return abs(a - b) <= 1 and _is_balanced(t[0]) and _is_balanced(t[1])


def _combine_shape(t, parts) -> str:
    """How the top-level parts (subtrees, each of ``parts`` leaves sets) are combined."""
    skeleton = _replace(t, parts)
    if _is_sequential(skeleton):
        return "sequentially"
    if _is_balanced(skeleton):
        return "pairwise"
    return "in another order"


def _replace(t, parts):
    """``t`` with each subtree whose leaf set is one of ``parts`` replaced by that part's index."""
    leaves = sorted(_leaves(t))
    for k, p in enumerate(parts):
        if leaves == sorted(p):
            return k
    if isinstance(t, int):
        return -1
    return tuple(_replace(c, parts) for c in t)


def _subtrees_with(t, leafset):
    """The smallest subtree of t containing exactly ``leafset``, or None."""
    if sorted(_leaves(t)) == sorted(leafset):
        return t
    if isinstance(t, int):
        return None
    for c in t:
        if set(leafset) <= set(_leaves(c)):
            return _subtrees_with(c, leafset)
    return None


def describe(tree, n: int) -> str:
    """A short name of a summation tree over n leaves (see the module docstring)."""
    if tree is None:
        return "not a plain tree of additions (compensated, or a wider accumulator)"
    if _is_sequential(tree):
        return "sequential (left to right)"
    if _is_balanced(tree):
        return "pairwise (balanced tree)"
    # lanes: residue classes mod L, each summed sequentially, meet only at the top
    for L in (2, 4, 8, 16, 32, 64):
        if L >= n:
            break
        main = n - n % L
        lanes = [list(range(r, main, L)) for r in range(L)]
        subs = [_subtrees_with(tree, lane) for lane in lanes]
        if all(s is not None and _is_sequential(s) for s in subs):
            rest = f", then the last {n - main} term(s) added" if n % L else ""
            return f"{L} lanes (stride {L}) each summed sequentially, combined {_combine_shape(tree, lanes)}{rest}"
    for B in (2, 4, 8, 16, 32, 64, 128, 256, 512):
        if B >= n:
            break
        blocks = [list(range(s, min(s + B, n))) for s in range(0, n, B)]
        subs = [_subtrees_with(tree, b) for b in blocks]
        if all(s is not None for s in subs):
            inner = {("sequential" if _is_sequential(s) else "pairwise" if _is_balanced(s) else "other") for s in subs}
            if len(inner) == 1 and "other" not in inner:
                how = {"sequential": "sequentially", "pairwise": "pairwise"}[inner.pop()]
                return f"blocks of {B} summed {how}, combined {_combine_shape(tree, blocks)}"
    if len(tree) == 2:   # a split into two contiguous parts (NumPy's pairwise recursion above 128 terms)
        a, b = (sorted(_leaves(c)) for c in tree)
        if a == list(range(len(a))) and b == list(range(len(a), n)):
            return (f"split into [0, {len(a)}) and [{len(a)}, {n}): "
                    f"{describe(_relabel(tree[0]), len(a))}; {describe(_relabel(tree[1]), len(b))}")
    return "other: " + _short(tree)


def _relabel(t):
    """``t`` with its leaves renumbered 0..k-1 in order."""
    order = {v: k for k, v in enumerate(sorted(_leaves(t)))}

    def go(u):
        return order[u] if isinstance(u, int) else tuple(go(c) for c in u)
    return go(t)


def _short(t, depth=3) -> str:
    if isinstance(t, int):
        return str(t)
    if depth == 0:
        ls = _leaves(t)
        return f"[{min(ls)}..{max(ls)}]"
    return "(" + " + ".join(_short(c, depth - 1) for c in t) + ")"


def probe(sum_rows, n: int = 64, dtype="float32") -> dict:
    """``{"n", "dtype", "order", "tree"}`` of the row reduction ``sum_rows``."""
    sizes = lca_sizes(sum_rows, n, dtype)
    tree = tree_from_sizes(sizes)
    return {"n": n, "dtype": dtype, "order": describe(tree, n), "tree": _short(tree, 4) if tree is not None else None}


# ---------------------------------------------------------------- the backends' row sums


def _numpy(dtype):
    from .dtypes import np_dtype

    def run(x):
        return x.astype(np_dtype(dtype)).sum(axis=-1)
    return run


def _torch(dtype, compiled=False):
    import torch

    f = (lambda t: t.sum(-1))
    if compiled:
        f = torch.compile(f, dynamic=True)

    def run(x):
        t = torch.from_numpy(x).to(getattr(torch, dtype))
        return f(t).double().numpy()
    return run


def _jax(dtype):
    import jax
    import jax.numpy as jnp

    f = jax.jit(lambda a: jnp.sum(a, axis=-1))

    def run(x):
        return np.asarray(f(jnp.asarray(x.astype(np.float32 if dtype == "float32" else x.dtype)))).astype(np.float64)
    return run


TARGETS = {"numpy": ("np.sum(x, axis=-1)", _numpy), "torch": ("torch.sum(x, dim=-1)", _torch),
           "torch_compiled": ("torch.compile(lambda x: x.sum(-1), dynamic=True)", lambda d: _torch(d, True)),
           "jax_jit": ("jax.jit(lambda x: jnp.sum(x, axis=-1))", _jax)}


def probe_all(n: int = 64, dtype="float32", targets=None) -> list:
    """One row per target: ``{"target", "call", "n", "dtype", "order", "tree"}`` or
    ``{"target", "call", "skipped": reason}`` when its framework is not importable."""
    rows = []
    for name in targets or TARGETS:
        call, make = TARGETS[name]
        try:
            fn = make(dtype)
        except ImportError as e:
            rows.append({"target": name, "call": call, "skipped": f"{type(e).__name__}: {e}"})
            continue
        try:
            rows.append({"target": name, "call": call, **probe(fn, n, dtype)})
        except Exception as e:  # noqa: BLE001 - a framework refusing the probe is reported, not raised
            rows.append({"target": name, "call": call, "skipped": f"{type(e).__name__}: {e}"})
    return rows


def panel(task: dict) -> dict:
    """The run's summation-order panel: :func:`probe_all` (n = 64, float32) of the targets whose
    framework is among ``task["backends"]`` (numpy always)."""
    fw = {"numpy": "numpy", "torch": "torch", "torch_compiled": "torch", "jax_jit": "jax"}
    backends = set(task.get("backends") or ("numpy", "torch", "jax")) | {"numpy"}
    names = [t for t in TARGETS if fw[t] in backends]
    n = int(task.get("n", 64))
    return {"n": n, "dtype": "float32", "sum": "x.sum(-1) over rows of n terms", "rows": probe_all(n, "float32", names)}
