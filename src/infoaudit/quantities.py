"""The quantity registry: one declarative entry per quantity.

Each entry names the quantity, its arguments in the public order (the quantity table of
docs/design.md: CLI ``--impl``, pytest plugin and user backends call functions with exactly these
arguments), the argument *kinds* (which drive validation and the input strategies), how the input
splits into units for the exact reference (``structure``), the definition, the unit of the result,
the edge-case conventions and its facts (``tags``). The exact formula of each quantity is
``reference.formulas.formula(name)`` (the registry does not import the reference). Audits,
reports, the gate and the benchmarks iterate over REGISTRY; adding a quantity means adding one
entry here, its formula (and derivative) in the reference and, for each backend, its native op.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LOGITS", "LOGPROBS", "PROBS", "PROB", "REAL", "TARGET01", "MU", "LOGVAR", "TABLE", "LABEL",
           "TEMPERATURE", "EPS", "BETA", "SCALAR_KINDS", "ARRAY_KINDS", "SAMPLES", "LOG_PROPOSAL",
           "HIDDEN", "WEIGHT", "INDEX_KINDS", "ELEMENTWISE", "ROW", "ROW_REDUCE", "TABLE_REDUCE",
           "ADAPTIVE", "Arg", "Quantity", "TAGS", "InputError", "REGISTRY", "get", "validate",
           "adaptive_sizes", "output_shape", "units"]

# Argument kinds. Float kinds are arrays in the audited dtype; LABEL is an int64 array;
# SCALAR kinds are Python floats.
LOGITS, LOGPROBS, PROBS, PROB, REAL, TARGET01, MU, LOGVAR, TABLE = (
    "logits", "logprobs", "probs", "prob", "real", "target01", "mu", "logvar", "table")
LABEL = "label"
TEMPERATURE, EPS, BETA = "temperature", "eps", "beta"
SCALAR_KINDS = (TEMPERATURE, EPS, BETA)
ARRAY_KINDS = (LOGITS, LOGPROBS, PROBS, PROB, REAL, TARGET01, MU, LOGVAR, TABLE)
# Sampled softmax: SAMPLES is an int64 array (..., K) of sampled class indices (one row of K per
# row of logits; duplicates allowed); LOG_PROPOSAL is log q over the full vocabulary, a float
# array shaped like the logits (a proposal shared by the batch is broadcast by the caller).
SAMPLES, LOG_PROPOSAL = "samples", "log_proposal"
# Adaptive softmax: HIDDEN rows (batch, d) and WEIGHT matrices (out_features, in_features) as
# torch.nn.Linear stores them, shared by every row.
HIDDEN, WEIGHT = "hidden", "weight"
ARRAY_KINDS = ARRAY_KINDS + (LOG_PROPOSAL, HIDDEN, WEIGHT)
INDEX_KINDS = (LABEL, SAMPLES)  # int64 class-index arrays

# Structures: how inputs split into units and what shape the output has.
ELEMENTWISE = "elementwise"    # float args broadcast; one output per element
ROW = "row"                    # rows along the last axis -> same shape
ROW_REDUCE = "row_reduce"      # rows along the last axis -> shape[:-1]
TABLE_REDUCE = "table_reduce"  # (..., nx, ny) tables -> shape[:-2]
ADAPTIVE = "adaptive"          # hidden rows (batch, d) and shared weights -> (batch, V) log-probabilities


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str

    @property
    def is_float_array(self) -> bool:
        return self.kind in ARRAY_KINDS

    @property
    def is_scalar(self) -> bool:
        return self.kind in SCALAR_KINDS

    @property
    def is_index_array(self) -> bool:
        return self.kind in INDEX_KINDS


@dataclass(frozen=True)
class Quantity:
    name: str
    args: tuple
    structure: str
    doc: str
    convention: str = ""
    unit: str = "nats"
    tags: tuple = field(default=())

    @property
    def arg_names(self):
        return tuple(a.name for a in self.args)

    @property
    def float_args(self):
        return tuple(i for i, a in enumerate(self.args) if a.is_float_array)

    def signature(self) -> str:
        return f"{self.name}({', '.join(self.arg_names)})"


# Per-quantity facts (``Quantity.tags``): what the judge and the metrics may assume of the result.
TAGS = {
    "nonnegative": "y >= 0 (losses, divergences, entropies, softplus)",
    "nonpositive": "y <= 0 (log-probabilities)",
    "unit_interval": "0 <= y <= 1 (probabilities; binary entropy in bits)",
    "row_sums_to_one": "each row of the result sums to 1 (softmax)",
    "max_log_n": "y <= log n, n = the reduction length (row or table size), in the quantity's unit",
    "max_log_ny": "y <= log ny, ny = the table's last axis (H(Y | X))",
    "max_log_min_nx_ny": "y <= log min(nx, ny) (I(X; Y))",
    "logsumexp_bounds": "max z <= y <= max z + log n",
    "log_like": "the result is a logarithm or a sum of logarithms: an infinity where the exact value is "
                "finite is log(0) of an underflowed value",
    "exp_outside_log": "the formula also has exp(x) outside any log argument: +inf may be an overflow",
    "value_only": "audited for its value only: no exact derivative is registered, so no gradient audit runs",
}


class InputError(ValueError):
    """Bad input to a quantity: wrong shape, dtype, range or arity (message names the problem)."""


def _q(name, args, structure, doc, convention="", unit="nats", tags=()):
    return Quantity(name, tuple(Arg(*a) for a in args), structure, doc, convention, unit, tuple(tags))


_ENTRIES = [
    _q("softmax", [("z", LOGITS)], ROW,
       "exp(z_i) / sum_j exp(z_j) over the last axis",
       "-inf entries give 0; an all -inf row, a +inf entry or a NaN gives NaN", unit="",
       tags=("unit_interval", "row_sums_to_one")),
    _q("log_softmax", [("z", LOGITS)], ROW,
       "z_i - logsumexp(z)", "-inf entries give -inf; all -inf row, +inf entry or NaN gives NaN",
       tags=("nonpositive", "log_like")),
    _q("logsumexp", [("z", LOGITS)], ROW_REDUCE,
       "log sum_j exp(z_j) over the last axis", "all -inf row -> -inf; any +inf -> +inf; NaN -> NaN",
       tags=("logsumexp_bounds", "log_like", "exp_outside_log")),
    _q("sigmoid", [("x", REAL)], ELEMENTWISE, "1 / (1 + exp(-x))", "sigmoid(+-inf) = 1, 0", unit="",
       tags=("unit_interval",)),
    _q("softplus", [("x", REAL)], ELEMENTWISE, "log(1 + exp(x))", "softplus(-inf) = 0, softplus(inf) = inf",
       tags=("nonnegative", "log_like", "exp_outside_log")),
    _q("log_sigmoid", [("x", REAL)], ELEMENTWISE, "-softplus(-x)", "log_sigmoid(-inf) = -inf",
       tags=("nonpositive", "log_like")),
    _q("entropy", [("p", PROBS)], ROW_REDUCE, "-sum p_i log p_i", "0 log 0 = 0",
       tags=("nonnegative", "max_log_n", "log_like")),
    _q("entropy_bits", [("p", PROBS)], ROW_REDUCE, "-sum p_i log2 p_i", "0 log 0 = 0", unit="bits",
       tags=("nonnegative", "max_log_n", "log_like")),
    _q("self_information_bits", [("p", PROB)], ELEMENTWISE, "-log2 p",
       "p = 0 -> +inf", unit="bits", tags=("nonnegative", "log_like")),
    _q("binary_entropy_bits", [("p", PROB)], ELEMENTWISE,
       "-(p log2 p + (1 - p) log2(1 - p))", "0 log 0 = 0 (H(0) = H(1) = 0)", unit="bits",
       tags=("unit_interval", "log_like")),
    _q("kl_divergence", [("p", PROBS), ("q", PROBS)], ROW_REDUCE,
       "sum p_i log(p_i / q_i)", "0 where p_i = 0; +inf where p_i > 0 = q_i", tags=("nonnegative", "log_like")),
    _q("cross_entropy_probs", [("p", PROBS), ("q", PROBS)], ROW_REDUCE,
       "-sum p_i log q_i", "0 where p_i = 0; +inf where p_i > 0 = q_i", tags=("nonnegative", "log_like")),
    _q("cross_entropy", [("z", LOGITS), ("y", LABEL)], ROW_REDUCE,
       "logsumexp(z) - z_y (y: int64 class index)", "masked target (z_y = -inf) -> +inf; all -inf row -> NaN",
       tags=("nonnegative", "log_like")),
    _q("nll_loss", [("logp", LOGPROBS), ("y", LABEL)], ROW_REDUCE, "-logp_y", "exact negation",
       tags=("nonnegative", "log_like")),
    _q("binary_cross_entropy", [("p", PROB), ("t", TARGET01)], ELEMENTWISE,
       "-(t log p + (1 - t) log(1 - p)), no clamping", "0 log 0 = 0; p = 0 with t > 0 -> +inf",
       tags=("nonnegative", "log_like")),
    _q("binary_cross_entropy_with_logits", [("z", REAL), ("t", TARGET01)], ELEMENTWISE,
       "softplus(z) - t z", "t in [0, 1]",
       tags=("nonnegative", "log_like", "exp_outside_log")),
    _q("label_smoothing_cross_entropy", [("z", LOGITS), ("y", LABEL), ("eps", EPS)], ROW_REDUCE,
       "-sum_i t_i log_softmax(z)_i, t = (1 - eps) onehot(y) + eps / K (K = number of classes)",
       "entries with t_i = 0 contribute 0; a -inf logit with t_i > 0 gives +inf", tags=("nonnegative", "log_like")),
    _q("distillation_loss", [("zs", LOGITS), ("zt", LOGITS), ("T", TEMPERATURE)], ROW_REDUCE,
       "T^2 KL(softmax(zt / T) || softmax(zs / T)), teacher zt, student zs",
       "exactly 0 when zt - zs is constant along the row", tags=("nonnegative", "log_like")),
    _q("rlhf_kl_penalty", [("z_policy", LOGITS), ("z_ref", LOGITS), ("beta", BETA)], ROW_REDUCE,
       "beta KL(softmax(z_policy) || softmax(z_ref)) per token",
       "exactly 0 when z_policy - z_ref is constant along the row", tags=("nonnegative", "log_like")),
    _q("gaussian_kl", [("mu", MU), ("logvar", LOGVAR)], ROW_REDUCE,
       "KL(N(mu, exp(logvar)) || N(0, 1)) = 0.5 sum(exp(logvar) + mu^2 - 1 - logvar)",
       "computed as expm1(logvar) - logvar; logvar = -inf -> +inf",
       tags=("nonnegative", "log_like", "exp_outside_log")),
    _q("joint_entropy", [("P", TABLE)], TABLE_REDUCE, "H(X, Y) = -sum P_xy log P_xy",
       "0 log 0 = 0; rows of P index x, columns y", tags=("nonnegative", "max_log_n", "log_like")),
    _q("conditional_entropy", [("P", TABLE)], TABLE_REDUCE,
       "H(Y | X) = -sum P_xy log(P_xy / P_x)", "P_x = sum_y P_xy; 0 log 0 = 0",
       tags=("nonnegative", "max_log_ny", "log_like")),
    _q("mutual_information", [("P", TABLE)], TABLE_REDUCE,
       "I(X; Y) = sum P_xy log(P_xy / (P_x P_y))", "marginals from P; 0 log 0 = 0",
       tags=("nonnegative", "max_log_min_nx_ny", "log_like")),
    _q("sampled_softmax_cross_entropy", [("z", LOGITS), ("y", LABEL), ("samples", SAMPLES), ("log_q", LOG_PROPOSAL)],
       ROW_REDUCE,
       "-(a_y) + logsumexp_{j in {y} + samples} a_j, a_j = z_j - log q_j (sampled softmax with the "
       "log-proposal correction; samples: int64 (..., K); log_q shaped like z)",
       "accidental hits (samples equal to y) are removed (their term is -inf, TF remove_accidental_hits); "
       "duplicate samples each count; entries of z / log_q outside {y} + samples are not read; "
       "a_y = -inf (masked target) -> +inf; a_y = +inf or NaN -> NaN",
       tags=("nonnegative", "log_like", "value_only")),
    _q("adaptive_log_softmax", [("h", HIDDEN), ("head_weight", WEIGHT), ("proj_1", WEIGHT), ("out_1", WEIGHT),
                                ("proj_2", WEIGHT), ("out_2", WEIGHT)], ADAPTIVE,
       "log p(c | h) of a two-cluster adaptive softmax (torch.nn.AdaptiveLogSoftmaxWithLoss.log_prob, "
       "head_bias=False): head = log_softmax(h W_head^T) over the shortlist and 2 cluster tokens; "
       "cluster i: head[S + i] + log_softmax((h P_i^T) O_i^T); weights as nn.Linear stores them "
       "(out_features, in_features); cutoffs = [S, S + o_1], S = head rows - 2, V = S + o_1 + o_2",
       "matrix products exact from the float inputs; -inf / NaN conventions of log_softmax per softmax",
       tags=("nonpositive", "log_like", "value_only")),
]

REGISTRY: dict[str, Quantity] = {q.name: q for q in _ENTRIES}


def get(name) -> Quantity:
    if isinstance(name, Quantity):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown quantity {name!r}; known quantities: {', '.join(REGISTRY)}") from None


# ---------------------------------------------------------------- validation and units


def _as_float_array(q, a, arg):
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "fiub" and "bfloat16" not in str(arr.dtype):
        raise InputError(f"{q.name}: argument {arg.name!r} must be a float array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def validate(q: Quantity, args) -> list:
    """Check arity, shapes, label range and probability ranges; return args as float64/int64/float.

    Float arrays are widened exactly to float64; labels become int64; scalars Python floats.
    Raises InputError with a message that names the argument and the problem.
    """
    q = get(q)
    if len(args) != len(q.args):
        raise InputError(f"{q.signature()} takes {len(q.args)} argument(s), got {len(args)}")
    out = []
    for a, arg in zip(args, q.args):
        if arg.is_scalar:
            try:
                v = float(a)
            except (TypeError, ValueError):
                raise InputError(f"{q.name}: {arg.name!r} must be a real number, got {a!r}") from None
            if arg.kind == TEMPERATURE and not v > 0:
                raise InputError(f"{q.name}: temperature {arg.name!r} must be > 0, got {v}")
            if arg.kind == EPS and not 0 <= v <= 1:
                raise InputError(f"{q.name}: {arg.name!r} must be in [0, 1], got {v}")
            out.append(v)
        elif arg.is_index_array:
            arr = np.asarray(a)
            if arr.dtype.kind not in "iu":
                raise InputError(f"{q.name}: labels {arg.name!r} must be integers (int64), got dtype {arr.dtype}")
            out.append(arr.astype(np.int64))
        else:
            arr = _as_float_array(q, a, arg)
            if arg.kind in (PROBS, PROB, TARGET01, TABLE):
                if np.any(arr < 0):
                    raise InputError(f"{q.name}: {arg.name!r} has negative entries (min {np.nanmin(arr)!r}); "
                                     "probabilities must be >= 0")
                if arg.kind in (PROB, TARGET01) and np.any(arr > 1):
                    raise InputError(f"{q.name}: {arg.name!r} has entries above 1 (max {np.nanmax(arr)!r})")
            out.append(arr)
    _check_shapes(q, out)
    return out


def _check_shapes(q: Quantity, vals):
    floats = [(arg, v) for arg, v in zip(q.args, vals) if arg.is_float_array]
    first_arg, first = floats[0]
    if q.structure == ADAPTIVE:
        _check_adaptive(q, vals)
        return
    if q.structure == ELEMENTWISE:
        try:
            np.broadcast_shapes(*[v.shape for _, v in floats])
        except ValueError:
            raise InputError(f"{q.name}: shapes {[v.shape for _, v in floats]} do not broadcast") from None
        return
    need = 2 if q.structure == TABLE_REDUCE else 1
    if first.ndim < need:
        raise InputError(f"{q.name}: {first_arg.name!r} needs at least {need} dimension(s), got shape {first.shape}")
    if 0 in first.shape[-need:]:
        raise InputError(f"{q.name}: {first_arg.name!r} has an empty reduction axis (shape {first.shape})")
    for arg, v in floats[1:]:
        if v.shape != first.shape:
            raise InputError(f"{q.name}: {arg.name!r} has shape {v.shape}, expected {first.shape} like {first_arg.name!r}")
    for arg, v in zip(q.args, vals):
        if arg.kind == LABEL:
            if v.shape != first.shape[:-1]:
                raise InputError(f"{q.name}: labels {arg.name!r} have shape {v.shape}, expected {first.shape[:-1]}")
            n = first.shape[-1]
            if v.size and (v.min() < 0 or v.max() >= n):
                raise InputError(f"{q.name}: labels {arg.name!r} out of range [0, {n}): min {v.min()}, max {v.max()}")
        elif arg.kind == SAMPLES:
            if v.ndim != first.ndim or v.shape[:-1] != first.shape[:-1] or v.shape[-1] < 1:
                raise InputError(f"{q.name}: samples {arg.name!r} have shape {v.shape}, expected "
                                 f"{first.shape[:-1] + ('K',)} with K >= 1")
            n = first.shape[-1]
            if v.size and (v.min() < 0 or v.max() >= n):
                raise InputError(f"{q.name}: samples {arg.name!r} out of range [0, {n}): min {v.min()}, max {v.max()}")


def adaptive_sizes(vals) -> tuple:
    """(d, S, o_1, o_2, V) of adaptive_log_softmax's arguments (h, W_head, P_1, O_1, P_2, O_2)."""
    h, head, _, o1, _, o2 = vals
    S = head.shape[0] - 2
    return h.shape[-1], S, o1.shape[0], o2.shape[0], S + o1.shape[0] + o2.shape[0]


def _check_adaptive(q: Quantity, vals):
    h, head, p1, o1, p2, o2 = vals
    if h.ndim != 2 or any(w.ndim != 2 for w in (head, p1, o1, p2, o2)):
        raise InputError(f"{q.name}: h must be (batch, d) and every weight 2-d (out_features, in_features)")
    d = h.shape[1]
    if d < 1 or h.shape[0] < 1:
        raise InputError(f"{q.name}: h has an empty axis (shape {h.shape})")
    if head.shape[0] < 3 or head.shape[1] != d:
        raise InputError(f"{q.name}: head_weight has shape {head.shape}, expected (S + 2, {d}) with S >= 1")
    for i, (p, o) in enumerate(((p1, o1), (p2, o2)), 1):
        if p.shape[1] != d or p.shape[0] < 1:
            raise InputError(f"{q.name}: proj_{i} has shape {p.shape}, expected (h_{i} >= 1, {d})")
        if o.shape[1] != p.shape[0] or o.shape[0] < 1:
            raise InputError(f"{q.name}: out_{i} has shape {o.shape}, expected (o_{i} >= 1, {p.shape[0]})")


def output_shape(q: Quantity, vals) -> tuple:
    floats = [v for arg, v in zip(q.args, vals) if arg.is_float_array]
    if q.structure == ADAPTIVE:
        return (floats[0].shape[0], adaptive_sizes(vals)[-1])
    if q.structure == ELEMENTWISE:
        return np.broadcast_shapes(*[v.shape for v in floats])
    if q.structure == ROW:
        return floats[0].shape
    if q.structure == ROW_REDUCE:
        return floats[0].shape[:-1]
    return floats[0].shape[:-2]


def units(q: Quantity, vals):
    """Yield one tuple of plain Python values per reference unit (element, row or table)."""
    shape = output_shape(q, vals)
    if q.structure == ELEMENTWISE:
        bvals = [np.broadcast_to(v, shape) if isinstance(v, np.ndarray) else v for v in vals]
        for idx in np.ndindex(*shape):
            yield tuple(float(v[idx]) if isinstance(v, np.ndarray) else v for v in bvals)
        return
    if q.structure == ADAPTIVE:
        weights = [v.tolist() for v in vals[1:]]
        for b in range(shape[0]):
            yield (vals[0][b].tolist(), *weights)
        return
    lead = shape if q.structure != ROW else shape[:-1]
    for idx in np.ndindex(*lead):
        unit = []
        for arg, v in zip(q.args, vals):
            if arg.is_float_array:
                unit.append(v[idx].tolist())
            elif arg.kind == LABEL:
                unit.append(int(v[idx]))
            elif arg.kind == SAMPLES:
                unit.append([int(s) for s in v[idx]])
            else:
                unit.append(v)
        yield tuple(unit)
