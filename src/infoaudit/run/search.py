"""The adversarial audit runner: corpus first, then hypothesis search, then shrinking.

One *group* is a (quantity, dtype) pair; its *cells* are the targets (backend x variant x device,
or a user's callable) that support the dtype. Every generated input is judged on every cell of
its group against **one** evaluation of the exact reference (the expensive part), so adding a
backend costs only its own calls.

For each group:

1. the fixed corpus (:mod:`infoaudit.corpus`: seed examples, the edge cases of docs/design.md, past findings);
2. a hypothesis search over :func:`infoaudit.strategies.cases` with ``target()`` climbing the
   largest finite ULP error of every cell;
3. a separate search (``focus="nonfinite"``: huge values, thresholds, masks, zeros, subnormals)
   whose target is the number of non-finite mismatches and invariant violations;
4. every input is judged on every cell by the one judge (:func:`infoaudit.judging.judge`): each
   element gets a grade (``correctly_rounded`` ... ``unstable``, or the classes ``flushed``,
   ``invariant``, ``nonfinite``; docs/grades.md), and the cell accumulates the counts per grade,
   a verdict under a judging profile (``default``: envelope and better pass; ``strict``:
   conditioned and better) and the one line that explains it. The platform's flush-to-zero
   behaviour is probed per framework, device and dtype (:mod:`.ftz`), as the gate does;
5. for each cell, the worst input per finding (``grade``: the worst element by grade and error
   over its allowance; ``well_conditioned``: the largest relative error beyond the conditioning
   at an input with condition number kappa <= ``WELL_CONDITIONED``; ``nonfinite``; ``invariant``)
   is shrunk to a minimal reproducer by the structural shrinker of :mod:`.shrink`, handed a
   predicate that re-evaluates the finding (one unit, then ddmin over row entries, then simpler
   values); the worst ``ulp`` and ``rel`` inputs are kept as found. Each finding is then run on
   the other cells of its group, so the report can name the best implementation on that input.

Everything is deterministic for a given seed (hypothesis ``@seed`` per group; shrinking has a
step budget, not a time budget), and nothing depends on the machine's speed: the exact reference
gets a deterministic *precision budget* per input (:func:`reference_precision_cap`: ``n (p + e)^2
<= reference_work`` for an input of ``n`` float values whose largest has binary exponent ``e``),
and an input it cannot decide within ``p`` bits is skipped and counted (``reference_over_budget``),
never judged against a guess. :func:`search` drives it for one quantity/dtype and any
targets (backend names, backend modules, ``(backend, variant)`` pairs or plain callables), which
is what the gate reuses for a user's function; :func:`run_group` is the process-pool task of
``infoaudit run``.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np

from .. import judging, reference
from .. import quantities as Q
from ..dtypes import FORMATS, cast, dtype_name, ulp_of
from ..judging import profiles as JP
from ..judging.compare import Unsupported
from ..judging.grades import CODE, GRADES, WELL_CONDITIONED
from ..reference.engine import MAX_PREC, PrecisionBudgetExceeded, precision_budget

# ---------------------------------------------------------------- profiles

PROFILE_SETTINGS = {
    # examples of the ULP search / of the non-finite search per group; shrink step budget;
    # points kept per cell for the error-vs-magnitude plot
    # variants: "first" audits each backend's primary op only; corpus_max: largest fixed case (elements)
    # shrink_elements: the shrinker's budget in input elements sent to the reference (its cost)
    # reference_work: the exact reference's budget per input, in element-bits^2: an input of n float
    # values may use p bits of working precision with n (p + e)^2 <= reference_work, e the binary
    # exponent of its largest value (see reference_precision_cap); an input it cannot decide within
    # p bits is skipped and counted. Deterministic: the same on a fast and a slow machine, unlike the
    # wall-clock timeout it replaces (3 / 8 / 120 s; the budgets are about that on a 2-core Xeon).
    "quick": dict(ulp_examples=6, nonfinite_examples=4, shrink_steps=15, shrink_elements=3_000, points=40,
                  variants="first", corpus_max=64, reference_work=2 ** 30),
    "default": dict(ulp_examples=70, nonfinite_examples=35, shrink_steps=120, shrink_elements=20_000, points=60,
                    variants="all", corpus_max=None, reference_work=2 ** 31),
    "thorough": dict(ulp_examples=600, nonfinite_examples=300, shrink_steps=400, shrink_elements=400_000,
                     points=200, variants="all", corpus_max=None, reference_work=2 ** 35),
}

DEFAULT_REFERENCE_WORK = 2 ** 31  # reference budget of a Group built without a profile (element-bits^2)
MIN_REFERENCE_BITS = 128        # the first precision at which the reference decides anything
# the worst input kept per cell: grade (worst grade, then error over its allowance),
# well_conditioned (largest relative error beyond the conditioning at kappa <= WELL_CONDITIONED),
# ulp, rel, nonfinite, invariant
METRICS = ("grade", "well_conditioned", "ulp", "rel", "nonfinite", "invariant")
SHRUNK_METRICS = ("nonfinite", "invariant", "grade", "well_conditioned")   # findings shrunk to a reproducer
SHIFT_INVARIANCE = "shift invariance (z + c)"
_CR, _FA, _FL, _CO, _EN, _UN, _IN, _NF = (CODE[g] for g in GRADES)


def reference_precision_cap(n_elements: int, work: float | None, magnitude_bits: int = 0) -> int | None:
    """The working precision (bits) the exact reference may use on one input: the largest power
    of two ``p`` in [MIN_REFERENCE_BITS, MAX_PREC] with ``n_elements * (p + magnitude_bits)**2 <=
    work`` (MIN_REFERENCE_BITS, the first precision at which the reference decides anything, when
    none fits); None (no cap) when ``work`` is None.

    A cost model, not a clock: mpmath's cost per element grows about like the square of the
    bits it carries, which are the working precision plus the binary exponent of the largest
    input (``magnitude_bits``: exp(z) of z ~ 1e296 reduces its argument with ~985 extra bits).
    Measured on a 2-core Xeon: a 256-entry RLHF-KL row of float64 logits up to 1e296 needs 4096
    bits (28 s), and ~10 s just to reach 1024 bits; ~3.8e-9 s per element-bit^2 per Ziv step.
    Both inputs of the model are properties of the input alone, so the cap -- and with it what
    gets judged -- is the same on every machine. The floor keeps inputs with huge values
    auditable (many are cheap: masked, shifted or saturated rows are decided at 128 bits); for
    them the work can exceed ``work`` (bounded by the profile's input sizes).
    """
    if work is None:
        return None
    n = max(int(n_elements), 1)
    e = max(int(magnitude_bits), 0)
    p = MIN_REFERENCE_BITS
    while p < MAX_PREC and n * (2 * p + e) ** 2 <= work:
        p *= 2
    return p


def float_elements(q, inputs) -> int:
    """Number of float values in ``inputs`` (array elements and float scalars; labels excluded)."""
    return sum(int(np.size(v)) for v, a in zip(inputs, q.args) if a.is_float_array) + \
        sum(1 for a in q.args if a.is_scalar)


def magnitude_bits(q, inputs) -> int:
    """The binary exponent (>= 0) of the largest finite |value| among the float inputs."""
    top = 0.0
    for v, a in zip(inputs, q.args):
        if not (a.is_float_array or a.is_scalar):
            continue
        x = np.abs(np.asarray(v, dtype=np.float64))
        x = x[np.isfinite(x)]
        if x.size:
            top = max(top, float(x.max()))
    return max(int(np.frexp(top)[1]), 0) if top > 0 else 0


class ReferenceOverBudget(Exception):
    """The exact reference could not decide an input within its deterministic precision budget."""


def exact_within_budget(q, inputs, work):
    """The exact reference of ``inputs`` under the precision budget for their size and magnitude
    (:func:`reference_precision_cap`); raises :class:`ReferenceOverBudget` when some element
    needs more bits than the budget allows or stays undecided at the engine's limit. Otherwise
    returns exactly what :func:`exact_of` returns.
    """
    cap = reference_precision_cap(float_elements(q, inputs), work, magnitude_bits(q, inputs))
    try:
        with precision_budget(cap):
            ex = exact_of(q, inputs)
    except PrecisionBudgetExceeded as e:
        raise ReferenceOverBudget(str(e)) from e
    if ex.undecided is not None and np.any(ex.undecided):
        raise ReferenceOverBudget(f"{int(np.sum(ex.undecided))} element(s) undecided at {MAX_PREC} bits")
    return ex


def group_seed(seed: int, *parts) -> int:
    """A stable per-group seed (independent of PYTHONHASHSEED and of the group order)."""
    return zlib.crc32(("|".join(str(p) for p in (seed, *parts))).encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    """Something that computes a quantity: a backend op on a device, or a user's callable."""

    backend: str
    variant: str
    device: str = "cpu"
    call: str = ""
    native: bool = False
    note: str = ""
    mod: object = None          # backend module (to_backend / to_numpy), None for numpy callables
    fn: object = None           # the op
    unsupported: str = ""       # reason, once known
    errors: int = 0
    first_error: str = ""
    successes: int = 0
    framework: str = ""         # whose arrays and floating-point environment (numpy, torch, jax)

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.variant}/{self.device}"

    @property
    def user(self) -> bool:
        """A user's own implementation (``infoaudit run --impl``, a callable passed to
        :func:`search`): judged like the gate judges it -- a raise or a result of another
        shape or dtype is a failure, not a framework's refusal."""
        return self.backend.startswith("user")

    def flush_probe(self, dtype):
        """The platform's flush-to-zero behaviour for this target in ``dtype`` (probed, cached)."""
        from ..harness import ftz

        fw = self.framework or ("numpy" if self.mod is None else FRAMEWORK_OF.get(getattr(self.mod, "NAME", ""), ""))
        if fw not in ("numpy", "torch", "jax"):
            return None
        p = ftz.probe(fw, dtype_name(dtype), self.device)
        return p if p.active else None

    def key(self, quantity, dtype) -> str:
        return cell_key(quantity, self.backend, self.variant, dtype, self.device)

    def __call__(self, inputs):
        if self.mod is not None:
            bargs = [self.mod.to_backend(v, self.device) if isinstance(v, np.ndarray) else v for v in inputs]
        else:
            bargs = list(inputs)
        scope = getattr(self.mod, "x64_scope", None) if self.user else None  # JAX: float64 under x64
        f64 = any(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in inputs)
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings(), \
                    (scope(f64) if scope is not None else contextlib.nullcontext()):
                warnings.simplefilter("ignore")
                out = self.fn(*bargs)
        except Exception as e:  # noqa: BLE001 - the framework's own refusal is the reason
            raise Unsupported(f"{type(e).__name__}: {e}") from e
        return np.asarray(self.mod.to_numpy(out)) if self.mod is not None else np.asarray(out)


FRAMEWORK_OF = {"numpy": "numpy", "scipy": "numpy", "torch": "torch", "jax": "jax"}


def cell_key(quantity, backend, variant, dtype, device="cpu") -> str:
    return f"{quantity}|{backend}|{variant}|{dtype}|{device}"


def targets_for(quantity, dtype, backends=None, devices=None):
    """Targets of every installed backend for (quantity, dtype); plus [(backend, reason)] skipped."""
    from ..backends import BACKENDS, BackendUnavailable, load

    q = Q.get(quantity)
    d = dtype_name(dtype)
    out, skipped = [], []
    for b in backends or BACKENDS:
        try:
            mod = load(b) if isinstance(b, str) else b
        except (BackendUnavailable, ModuleNotFoundError, ImportError) as e:
            skipped.append((b if isinstance(b, str) else getattr(b, "NAME", "?"), f"not available: {e}"))
            continue
        out += _targets_of_module(mod, q, d, devices, skipped)
    return out, skipped


def _targets_of_module(mod, q, d, devices, skipped):
    name = getattr(mod, "NAME", "?")
    if d not in getattr(mod, "DTYPES", ()):
        skipped.append((name, f"{d} not supported by {name}"))
        return []
    try:
        table = mod.ops()
    except Exception as e:  # noqa: BLE001
        skipped.append((name, f"ops() failed: {type(e).__name__}: {e}"))
        return []
    if q.name not in table:
        skipped.append((name, f"no op for {q.name}"))
        return []
    devs = devices or (mod.devices() if hasattr(mod, "devices") else ["cpu"])
    out = []
    for dev in devs:
        for op in table[q.name]:
            out.append(Target(name, op.variant, dev, op.call, op.native, op.note, mod, op.fn,
                              framework=FRAMEWORK_OF.get(name, "")))
    return out


def as_targets(quantity, target, dtype, device=None, framework=None):
    """Normalise ``target`` (see :func:`search`) to a list of Targets (+ skipped reasons)."""
    from ..backends import Op, load

    q = Q.get(quantity)
    d = dtype_name(dtype)
    if isinstance(target, Target):
        return [target], []
    if isinstance(target, (list, tuple)) and all(isinstance(t, Target) for t in target):
        return list(target), []
    if isinstance(target, str):
        return targets_for(q, d, [target], [device] if device else None)
    if isinstance(target, (list, tuple)) and all(isinstance(t, str) for t in target):
        return targets_for(q, d, list(target), [device] if device else None)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        ts, sk = targets_for(q, d, [target[0]], [device] if device else None)
        return [t for t in ts if t.variant == target[1]], sk
    if isinstance(target, Op):
        mod = load(framework or "numpy")
        return [Target(mod.NAME, target.variant, device or "cpu", target.call, target.native, target.note, mod,
                       target.fn, framework=FRAMEWORK_OF.get(mod.NAME, ""))], []
    if hasattr(target, "ops") and hasattr(target, "NAME"):
        skipped = []
        return _targets_of_module(target, q, d, [device] if device else None, skipped), skipped
    if callable(target):
        mod = load(framework) if framework else None
        nm = getattr(target, "__qualname__", getattr(target, "__name__", "fn"))
        modname = getattr(target, "__module__", "") or ""
        return [Target("user" if framework is None else f"user-{framework}", nm, device or "cpu",
                       f"{modname}.{nm}" if modname else nm, False, "user implementation", mod, target,
                       framework=framework or "numpy")], []
    raise TypeError(f"cannot audit {target!r}: pass a backend name, module, Op or callable")


# ---------------------------------------------------------------- judging one input


def _f64(v):
    if isinstance(v, np.ndarray) and (v.dtype.kind == "f" or "bfloat16" in str(v.dtype)):
        return v.astype(np.float64)
    return v


def exact_of(q, inputs):
    return reference.evaluate(q.name, *[_f64(v) for v in inputs])


def judge(q, target: Target, inputs, exact, dname, ftz=None):
    """Run ``target`` on ``inputs`` and judge the result with the one judge.

    Returns ``(y float64, judging.Judgement, notes)``; raises :class:`Unsupported` when the
    target refuses. A backend op's result of the same size but another shape is reshaped, one in
    a wider dtype rounded once to ``dname`` (both noted); a user's implementation must return the
    expected shape and dtype, as the gate requires (:attr:`Target.user`). ``ftz``: the
    platform's flush-to-zero probe (:meth:`Target.flush_probe`) or None.
    """
    raw = target(inputs)
    notes = []
    returned = dtype_name(raw.dtype) if (raw.dtype.kind == "f" or "bfloat16" in str(raw.dtype)) else str(raw.dtype)
    if raw.shape != exact.shape:
        if raw.size == exact.size and not target.user:
            notes.append(f"returned shape {raw.shape}, expected {exact.shape}; reshaped")
            raw = raw.reshape(exact.shape)
        else:
            raise Unsupported(f"returned shape {raw.shape}, expected {exact.shape}")
    if returned != dname:
        if target.user:
            raise Unsupported(f"returned dtype {returned}; expected {dname} (the dtype of its inputs)")
        notes.append(f"returned {returned}; rounded once to {dname}")
        try:
            raw = cast(raw.astype(np.float64), dname)
        except (TypeError, ValueError) as e:
            raise Unsupported(f"returned {returned}: {e}") from e
    y = raw.astype(np.float64)
    return y, judging.judge(q, inputs, y, exact, dname, ftz=ftz), notes


def invariant_masks(q, inputs, j, dname, judged=None) -> dict:
    """{rule: elements the judge graded ``invariant`` under it} of one judgement (among
    ``judged``), keyed by the rule names of :func:`infoaudit.judging.check_invariants` (e.g.
    ``"y >= 0"``, ``"rows sum to 1"``); empty when no element is graded ``invariant``."""
    graded = j.codes == _IN
    if judged is not None:
        graded = graded & judged
    if not graded.any():
        return {}
    band = j.band_codes if getattr(j, "band_codes", None) is not None else j.codes
    tol = np.maximum(j.allow_conditioned, j.allow_envelope)
    inv = judging.check_invariants(q, inputs, j.computed, dname, exact=j.exact_hi, tol=tol, flushed=band == _FL)
    out = {rule: np.asarray(m, bool) & graded for rule, m in inv.rules.items()}
    out = {rule: m for rule, m in out.items() if m.any()}
    return out or {"invariant": graded}


def _shift_check(q, target, inputs, j, exact, dname, profile, ftz=None):
    """softmax / log_softmax(z + c) equals softmax / log_softmax(z) (c exact, the exact values
    the same): a second call on the shifted logits, judged by the same judge. Returns (mask of
    elements whose shifted result fails ``profile`` -- or is non-finite -- where the first call's
    passes, c) or None. Not part of the cell's verdict: the gate, which calls an implementation
    once per input, cannot make this check, and the verdicts of both are the judge's."""
    if q.name not in ("softmax", "log_softmax"):
        return None
    z = inputs[0].astype(np.float64)
    fin = np.isfinite(z)
    if not fin.any():
        return None
    zmax = float(np.max(np.abs(z[fin])))
    for c in (FORMATS[dname].max / 4, 64.0, -64.0):
        with np.errstate(over="ignore", invalid="ignore"):
            zc = z + c
        if not np.isfinite(zc[fin]).all() or (np.abs(zc[fin]) > FORMATS[dname].max).any():
            continue
        zcd = cast(zc, dname)
        if not np.array_equal(zcd.astype(np.float64), zc, equal_nan=True):
            continue
        if zmax + abs(c) > FORMATS[dname].max:
            continue
        try:
            _, j2, _ = judge(q, target, [zcd], exact, dname, ftz)
        except Unsupported:
            return None
        first = JP.failing_mask(j, profile) | (j.codes == _NF)
        bad = (JP.failing_mask(j2, profile) | (j2.codes == _NF)) & ~first
        return (bad, c) if bad.any() else None
    return None


# ---------------------------------------------------------------- per-cell bookkeeping


@dataclass
class Worst:
    """The worst input seen for one metric of one cell (arrays in the audited dtype), with the
    judge's verdict on its worst element."""

    metric: str
    value: float
    args: tuple
    index: tuple
    computed: float
    expected: float        # exact value correctly rounded to the dtype
    exact_hi: float
    exact_lo: float
    ulp: float
    rel: float
    abs: float
    klass: str = ""        # non-finite class or invariant rule
    source: str = ""       # corpus label or "search:any" / "search:nonfinite"
    recipe: dict = field(default_factory=dict)
    shrunk: "Worst | None" = None
    shrink_steps: int = 0
    grade: str = ""        # the judge's grade of the element
    kappa: float = math.nan          # condition number N / |y*| at the element
    allow_conditioned: float = math.nan  # the conditioned allowance, in ULPs of the exact value
    allow_envelope: float = math.nan     # a stable algorithm's envelope, in ULPs
    why: str = ""          # the judge's one line on the element (ULPs, both allowances, grade)
    others: list = field(default_factory=list)  # the other cells of the group on the same input


@dataclass
class CellState:
    target: Target
    quantity: str
    dtype: str
    ftz: object = None     # flush-to-zero probe (active) or None
    examples: int = 0
    elements: int = 0
    max_ulp: float = 0.0
    max_rel: float = 0.0
    max_score: float = 0.0  # |err| / the larger allowance, over judged finite elements
    max_abs: float = 0.0
    nonfinite: dict = field(default_factory=dict)
    invariants: dict = field(default_factory=dict)
    worst: dict = field(default_factory=dict)
    ulps: list = field(default_factory=list)
    points: list = field(default_factory=list)
    search_hits: dict = field(default_factory=dict)  # finding class -> count on hypothesis-generated inputs
    notes: set = field(default_factory=set)
    grade_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(GRADES), np.int64))
    unjudged: int = 0      # elements the judging profile does not judge (undefined exact value, inf inputs)
    failing: int = 0       # judged elements whose grade the profile does not pass
    why: str = ""          # the verdict's one line: the deciding element of the deciding input
    why_key: tuple = (-1, -1, -1.0)
    keys: dict = field(default_factory=dict)  # metric -> ranking key of the stored worst input


def fingerprint(args) -> bytes:
    import hashlib

    h = hashlib.sha1()
    for a in args:
        if isinstance(a, np.ndarray):
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(a).encode())
        h.update(b"|")
    return h.digest()


def _val(a, idx):
    try:
        return float(np.asarray(a)[idx])
    except (IndexError, TypeError):
        return math.nan


def scores(j) -> np.ndarray:
    """|err| / max(conditioned, envelope allowance) per element (NaN where not finite)."""
    with np.errstate(all="ignore"):
        s = j.abs / np.maximum(j.allow_conditioned, j.allow_envelope)
    return np.where(np.isfinite(s), s, np.nan)


def _key_of(j, i, sc):
    """Ranking of one element: (grade code, min(score, 1e3))."""
    s = float(sc[i]) if np.isfinite(sc[i]) else 1e3
    return int(j.codes[i]), min(s, 1e3)


def why_line(j, profile, fail, judged, prefix="") -> str:
    """The verdict in one line: PASS/FAIL, the profile and its passing grade, and the deciding
    element (the worst failing one, else the worst judged one) with its ULPs, both allowances and
    grade (:meth:`judging.Judgement.describe`)."""
    head = f"{'FAIL' if fail.any() else 'PASS'} under {profile.name} ({profile.passing} and better pass)"
    i = j.worst_index(fail if fail.any() else judged)
    if i is None:
        return f"{head}: no element judged"
    line = f"{head}: {prefix}{j.describe(i)}"
    if int(fail.sum()) > 1:
        counts = np.bincount(j.codes[fail].astype(np.int64), minlength=len(GRADES))
        line += " [failing: " + ", ".join(f"{k} {g}" for g, k in zip(GRADES, counts) if k) + "]"
    return line


def finding_masks(j, judged):
    """(band, well-conditioned) masks of one judgement: judged elements graded by their error
    (not a class: ``nonfinite`` / ``invariant`` findings have their own); and judged elements beyond
    the conditioning (``envelope``, ``unstable``, ``invariant``) at kappa <= WELL_CONDITIONED."""
    band = judged & (j.codes <= _UN)
    with np.errstate(all="ignore"):
        wc = judged & np.isin(j.codes, (_EN, _UN, _IN)) & (j.kappa <= WELL_CONDITIONED) & np.isfinite(j.rel)
    return band, wc


class Group:
    """Search state of one (quantity, dtype) over its targets."""

    def __init__(self, quantity, dtype, targets, profile="default", seed=0, max_points=150, judge_profile="default"):
        self.q = Q.get(quantity)
        self.dtype = dtype_name(dtype)
        self.targets = list(targets)
        self.profile = profile
        self.judge_profile = JP.get(judge_profile)
        self.seed = seed
        self.cells = [CellState(t, self.q.name, self.dtype, t.flush_probe(self.dtype)) for t in self.targets]
        self.examples = 0
        self.reference_errors = 0      # inputs skipped: the reference refused or failed (over budget included)
        self.reference_over_budget = 0  # of which: past the deterministic precision budget
        self.reference_seconds = 0.0
        self.backend_seconds = 0.0
        self.max_points = max_points
        self.shrink_elements = None
        self.reference_work = DEFAULT_REFERENCE_WORK
        self._exact_cache = {}
        self._rng = np.random.default_rng(group_seed(seed, "points", self.q.name, self.dtype))

    # -- one input on every cell
    def exact(self, args):
        """Reference values of ``args`` (memoised on the bytes of the inputs)."""
        key = fingerprint(args)
        ex = self._exact_cache.get(key)
        if ex is None:
            ex = exact_within_budget(self.q, list(args), self.reference_work)
            if len(self._exact_cache) > 512:
                self._exact_cache.clear()
            self._exact_cache[key] = ex
        return ex

    def judge_cell(self, cell, args, exact=None):
        """(y, Judgement, notes) of one cell on ``args`` (the exact values from the group's cache
        when not given); raises Unsupported, ReferenceOverBudget or the reference's error."""
        if exact is None:
            exact = self.exact(list(args))
        return judge(self.q, cell.target, list(args), exact, self.dtype, cell.ftz)

    def evaluate(self, args, source="", recipe=None):
        """Judge ``args`` on every live cell; returns {cell index: (max finite ulp, max score,
        non-finite + invariant count)}.

        ``source`` is a label, or a list with one label per batch row (stacked corpus cases).
        """
        q = self.q
        inputs = list(args)
        t0 = time.perf_counter()
        try:
            exact = self.exact(inputs)
        except ReferenceOverBudget:  # deterministic: the same input is skipped on every machine
            self.reference_errors += 1
            self.reference_over_budget += 1
            return {}
        except Exception:  # noqa: BLE001 - an input the reference cannot evaluate is skipped
            self.reference_errors += 1
            return {}
        self.reference_seconds += time.perf_counter() - t0
        self.examples += 1
        mags = unit_magnitudes(q, inputs, exact.shape)
        res = {}
        t0 = time.perf_counter()
        for i, cell in enumerate(self.cells):
            t = cell.target
            if t.unsupported:
                continue
            try:
                y, j, notes = self.judge_cell(cell, inputs, exact)
            except Unsupported as e:
                t.errors += 1
                t.first_error = t.first_error or str(e)
                if t.successes == 0 and t.errors >= 3:
                    t.unsupported = t.first_error
                continue
            t.successes += 1
            cell.notes.update(notes)
            res[i] = self._record(cell, inputs, y, j, exact, mags, source, recipe)
        self.backend_seconds += time.perf_counter() - t0
        return res

    def _record(self, cell, inputs, y, j, exact, mags, source, recipe):
        p = self.judge_profile
        judged = JP.judged_mask(j, p)
        fail = JP.failing_mask(j, p)
        cell.examples += 1
        cell.elements += int(y.size)
        fin = np.isfinite(j.ulp)
        u = j.ulp[fin]
        if u.size:
            cell.ulps.append(u)
        top_ulp = float(u.max()) if u.size else 0.0
        rels = j.rel[np.isfinite(j.rel)]
        top_rel = float(rels.max()) if rels.size else 0.0
        cell.max_abs = max(cell.max_abs, float(np.max(j.abs[fin])) if fin.any() else 0.0)
        sc = scores(j)
        fs = judged & np.isfinite(sc) & (j.codes != _NF)
        top_score = float(sc[fs].max()) if fs.any() else 0.0
        cell.max_score = max(cell.max_score, top_score)
        # grades of the judged elements, the failing ones, and the verdict's deciding element
        cell.grade_counts += np.bincount(j.codes[judged].ravel().astype(np.int64), minlength=len(GRADES))
        cell.unjudged += int(np.count_nonzero(~judged))
        n_fail = int(np.count_nonzero(fail))
        cell.failing += n_fail
        decide = j.worst_index(fail if n_fail else judged)
        if decide is not None:
            key = (1 if n_fail else 0,) + _key_of(j, decide, sc)
            if key > cell.why_key:
                cell.why_key = key
                cell.why = why_line(j, p, fail, judged)
        from_search = isinstance(source, str) and source.startswith("search")
        nf = judged & (j.codes == _NF)
        n_nf = int(nf.sum())
        for c in j.nonfinite[nf].ravel():
            cell.nonfinite[c] = cell.nonfinite.get(c, 0) + 1
            if from_search:
                cell.search_hits[c] = cell.search_hits.get(c, 0) + 1
        inv = {rule: np.asarray(m) for rule, m in self._invariant_masks(inputs, j, judged).items()}
        sh = _shift_check(self.q, cell.target, inputs, j, exact, self.dtype, p, cell.ftz)
        if sh is not None:
            inv[SHIFT_INVARIANCE] = sh[0]
        n_inv = 0
        for name, mask in inv.items():
            k = int(mask.sum())
            n_inv += k
            cell.invariants[name] = cell.invariants.get(name, 0) + k
            if from_search:
                cell.search_hits[name] = cell.search_hits.get(name, 0) + k
        # the worst input per metric
        band, wc = finding_masks(j, judged)
        i = j.worst_index(band)
        if i is not None:
            key = _key_of(j, i, sc)
            if key > cell.keys.get("grade", (-1, -1.0)):
                cell.keys["grade"] = key
                cell.worst["grade"] = self._worst("grade", key[1], inputs, i, j, exact, "", source, recipe)
        if wc.any():
            r = np.where(wc, j.rel, -1.0)
            i = tuple(int(k) for k in np.unravel_index(int(np.argmax(r)), r.shape))
            if float(r[i]) > cell.keys.get("well_conditioned", -1.0):
                cell.keys["well_conditioned"] = float(r[i])
                cell.worst["well_conditioned"] = self._worst("well_conditioned", float(r[i]), inputs, i, j, exact,
                                                             "", source, recipe)
        if u.size and top_ulp > cell.max_ulp:
            cell.max_ulp = top_ulp
            i = np.unravel_index(int(np.nanargmax(np.where(fin, j.ulp, -1.0))), j.ulp.shape)
            cell.worst["ulp"] = self._worst("ulp", top_ulp, inputs, i, j, exact, "", source, recipe)
        if rels.size and top_rel > cell.max_rel:
            cell.max_rel = top_rel
            r = np.where(np.isfinite(j.rel), j.rel, -1.0)
            i = np.unravel_index(int(np.argmax(r)), r.shape)
            cell.worst["rel"] = self._worst("rel", top_rel, inputs, i, j, exact, "", source, recipe)
        if n_nf and "nonfinite" not in cell.worst:  # the first non-finite input found (corpus, then search)
            i = tuple(int(k) for k in np.argwhere(nf)[0])
            cell.worst["nonfinite"] = self._worst("nonfinite", n_nf, inputs, i, j, exact, str(j.nonfinite[i]),
                                                  source, recipe)
        if n_inv and ("invariant" not in cell.worst or n_inv > cell.worst["invariant"].value):
            name, mask = next((k, m) for k, m in inv.items() if m.any())
            i = tuple(int(k) for k in np.argwhere(mask)[0])
            cell.worst["invariant"] = self._worst("invariant", n_inv, inputs, i, j, exact, name, source, recipe)
        # points for the error-vs-magnitude plot
        self._points(cell, j, mags)
        return top_ulp, top_score, n_nf + n_inv

    def _invariant_masks(self, inputs, j, judged) -> dict:
        return invariant_masks(self.q, inputs, j, self.dtype, judged)

    def _worst(self, metric, value, inputs, idx, j, exact, klass, source, recipe):
        idx = tuple(int(i) for i in idx)
        if isinstance(source, list):
            source = source[idx[0]] if idx and idx[0] < len(source) else ", ".join(source)
        hi = _val(j.exact_hi, idx)
        with np.errstate(all="ignore"):
            unit = float(ulp_of(np.array([hi]), self.dtype)[0]) if math.isfinite(hi) else math.nan
        return Worst(metric, float(value), tuple(v.copy() if isinstance(v, np.ndarray) else v for v in inputs), idx,
                     _val(j.computed, idx), _val(j.expected, idx), hi, _val(exact.lo, idx),
                     _val(j.ulp, idx), _val(j.rel, idx), _val(j.abs, idx), klass, source, dict(recipe or {}),
                     grade=GRADES[int(j.codes[idx])], kappa=_val(j.kappa, idx),
                     allow_conditioned=_val(j.allow_conditioned, idx) / unit,
                     allow_envelope=_val(j.allow_envelope, idx) / unit, why=j.describe(idx))

    def _points(self, cell, j, mags):
        flat_u = j.ulp.ravel()
        flat_r = j.rel.ravel()
        flat_m = mags.ravel()
        fin = np.flatnonzero(np.isfinite(flat_u))
        if not fin.size:
            return
        pick = [int(fin[np.argmax(flat_u[fin])])]
        if fin.size > 1:
            pick += [int(i) for i in self._rng.choice(fin, size=min(3, fin.size), replace=False)]
        for i in pick:
            p = (float(flat_m[i]), float(flat_u[i]), float(flat_r[i]))
            if len(cell.points) < self.max_points:
                cell.points.append(p)
            else:
                k = int(self._rng.integers(0, len(cell.points) + 1))
                if k < len(cell.points) and i == pick[0] and p[1] > cell.points[k][1]:
                    cell.points[k] = p

    # -- the verdict of a cell
    def verdict(self, cell) -> dict:
        """The cell's judging fields: ``grade`` (its worst judged element's), ``grades`` (judged
        elements per grade), ``verdict`` ("pass" / "fail"; None for a backend cell that did not
        run), ``profile``, ``why``, ``unjudged``, ``failing``. A user's implementation that raised
        or returned the wrong shape or dtype fails, as in the gate."""
        t = cell.target
        grades = {g: int(k) for g, k in zip(GRADES, cell.grade_counts) if k}
        out = {"grade": judging.worst_grade(grades), "grades": grades, "verdict": None,
               "profile": self.judge_profile.name, "why": cell.why, "unjudged": cell.unjudged,
               "failing": cell.failing}
        if t.user and t.errors:
            out["verdict"] = "fail"
            out["why"] = (f"FAIL under {self.judge_profile.name}: the implementation failed on {t.errors} "
                          f"input(s): {t.first_error}")
        elif cell.examples and not t.unsupported:
            out["verdict"] = "fail" if cell.failing else "pass"
        return out


# ---------------------------------------------------------------- shrinking and the other cells


def _same_nonfinite(classes, klass):
    """Elements of ``classes`` (non-finite class names) in the class ``klass``; NaN from inf - inf
    and a plain NaN count as one (the class of a NaN depends on whether the batch holds an
    infinite input anywhere, which removing rows changes)."""
    nan = ("nan", "nan_inf_arith")
    return np.isin(classes, nan) if klass in nan else (classes == klass)


def _finding_holds(group, cell, metric, w):
    """The predicate handed to the shrinker: does ``w``'s finding show on ``args``?"""
    p = group.judge_profile
    code = CODE.get(w.grade, _UN)

    def holds(args):
        args = list(args)
        if metric == "invariant" and w.klass == SHIFT_INVARIANCE:
            _, j, _ = group.judge_cell(cell, args)
            return _shift_check(group.q, cell.target, args, j, group.exact(args), group.dtype, p,
                                cell.ftz) is not None
        _, j, _ = group.judge_cell(cell, args)
        judged = JP.judged_mask(j, p)
        if metric == "nonfinite":
            return bool((judged & (j.codes == _NF) & _same_nonfinite(j.nonfinite, w.klass)).any())
        if metric == "invariant":
            return w.klass in group._invariant_masks(args, j, judged)
        band, wc = finding_masks(j, judged)
        if metric == "grade":
            sc = scores(j)
            return bool((band & (j.codes >= code) & (np.nan_to_num(sc, nan=np.inf) >= 0.5 * min(w.value, 1e3))).any())
        return bool((wc & (j.rel >= 0.5 * w.rel)).any())   # well_conditioned
    return holds


def _needs_shrinking(metric, w) -> bool:
    """Non-finite, invariant and well-conditioned findings always; the worst-grade input when it
    is beyond the conditioning (``envelope`` or ``unstable``)."""
    return metric != "grade" or CODE.get(w.grade, 0) in (_EN, _UN)


def _rejudge(group, cell, args, metric, klass):
    """The finding ``metric`` of ``cell`` on ``args`` as a Worst (None when it does not show)."""
    p = group.judge_profile
    try:
        exact = group.exact(list(args))
        _, j, _ = group.judge_cell(cell, args, exact)
    except Exception:  # noqa: BLE001
        return None
    judged = JP.judged_mask(j, p)
    if metric == "nonfinite":
        hits = np.argwhere(judged & (j.codes == _NF) & _same_nonfinite(j.nonfinite, klass))
        if not hits.size:
            return None
        idx, val = tuple(int(i) for i in hits[0]), float(np.count_nonzero(judged & (j.codes == _NF)))
        klass = str(j.nonfinite[idx])
    elif metric == "invariant":
        inv = group._invariant_masks(list(args), j, judged)
        if klass == SHIFT_INVARIANCE:
            sh = _shift_check(group.q, cell.target, list(args), j, exact, group.dtype, p, cell.ftz)
            if sh is not None:
                inv[klass] = sh[0]
        if klass not in inv:
            return None
        idx, val = tuple(int(i) for i in np.argwhere(inv[klass])[0]), float(inv[klass].sum())
    else:
        band, wc = finding_masks(j, judged)
        if metric == "grade":
            idx = j.worst_index(band)
            if idx is None:
                return None
            val = _key_of(j, idx, scores(j))[1]
        else:
            if not wc.any():
                return None
            r = np.where(wc, j.rel, -1.0)
            idx = tuple(int(k) for k in np.unravel_index(int(np.argmax(r)), r.shape))
            val = float(r[idx])
    return group._worst(metric, val, list(args), idx, j, exact, klass, "shrunk", None)


def _cost_rank(cell):
    """Cheap targets drive the shared shrinking (a jit backend compiles every new shape)."""
    return 1 if cell.target.backend.startswith("jax") else 0


def shrink_findings(group: Group, budget: int):
    """Shrink every cell's findings (:data:`SHRUNK_METRICS`) with :class:`.shrink.Shrinker`;
    cells whose worst input and finding coincide share one shrink.

    The cheapest cell of each set drives the shrinker; the reproducer it finds is re-judged on
    the others and kept where it still shows their finding; where it does not, that cell is
    shrunk on its own with a quarter of the budget.
    """
    from .shrink import Shrinker

    jobs = {}
    for cell in group.cells:
        if cell.target.unsupported:
            continue
        for metric in SHRUNK_METRICS:
            w = cell.worst.get(metric)
            if w is None or not _needs_shrinking(metric, w):
                continue
            jobs.setdefault((metric, w.klass, fingerprint(w.args)), []).append(cell)
    for (metric, klass, _), cells in jobs.items():
        cells = sorted(cells, key=_cost_rank)
        driver = cells[0]
        w = driver.worst[metric]
        sh = Shrinker(group.q, group.dtype, _finding_holds(group, driver, metric, w), budget, group.shrink_elements)
        small = sh.run(w.args, w.index)
        for k, cell in enumerate(cells):
            wc = cell.worst[metric]
            res = _rejudge(group, cell, small, metric, klass)
            ok = res is not None and _finding_holds(group, cell, metric, wc)(small)
            steps = sh.steps if k == 0 else 1
            if not ok:
                sh2 = Shrinker(group.q, group.dtype, _finding_holds(group, cell, metric, wc), max(4, budget // 4),
                               group.shrink_elements)
                res = _rejudge(group, cell, sh2.run(wc.args, wc.index), metric, klass)
                steps = sh2.steps
            wc.shrunk = res
            wc.shrink_steps = steps


def compare_on_findings(group: Group):
    """Run every finding's input (the shrunk one where there is one) on the other live cells of
    the group: ``Worst.others`` holds their result at the same element (ULPs, relative error,
    grade), so the report can name the best implementation on that input."""
    for cell in group.cells:
        for metric in SHRUNK_METRICS:
            w = cell.worst.get(metric)
            if w is None:
                continue
            case = w.shrunk or w
            others = []
            for other in group.cells:
                if other is cell or other.target.unsupported:
                    continue
                try:
                    _, j, _ = group.judge_cell(other, case.args)
                    i = tuple(case.index)
                    others.append({"backend": other.target.backend, "variant": other.target.variant,
                                   "device": other.target.device, "call": other.target.call,
                                   "computed": _val(j.computed, i), "ulp": _val(j.ulp, i), "rel": _val(j.rel, i),
                                   "grade": GRADES[int(j.codes[i])]})
                except Exception:  # noqa: BLE001 - the other cell refuses this input: nothing to compare
                    continue
            case.others = others


def unit_magnitudes(q, inputs, out_shape):
    """Per output element: the largest finite |input| of its unit (the smallest positive value for probabilities)."""
    fa = [(a, v) for a, v in zip(q.args, inputs) if a.is_float_array]
    arg, v = fa[0]
    x = np.abs(v.astype(np.float64))
    probs = arg.kind in (Q.PROBS, Q.PROB, Q.TABLE)
    with np.errstate(invalid="ignore"):
        if probs:
            x = np.where(x > 0, x, np.inf)
        else:
            x = np.where(np.isfinite(x), x, -np.inf if not probs else np.inf)
        if q.structure == Q.ELEMENTWISE:
            m = np.broadcast_to(x, out_shape)
        elif q.structure == Q.TABLE_REDUCE:
            m = (np.min if probs else np.max)(x.reshape(*x.shape[:-2], -1), axis=-1)
        else:
            m = (np.min if probs else np.max)(x, axis=-1)
            if q.structure == Q.ROW:
                m = np.broadcast_to(m[..., None], out_shape)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.asarray(m, dtype=np.float64)


def magnitude_label(q) -> str:
    arg = next(a for a in Q.get(q).args if a.is_float_array)
    if arg.kind in (Q.PROBS, Q.PROB, Q.TABLE):
        return "smallest positive probability"
    if Q.get(q).structure == Q.ELEMENTWISE:
        return "|input|"
    return "largest finite |input| in the row"


# ---------------------------------------------------------------- hypothesis search


def hypothesis_phase(group, focus: str, n_examples: int, seed: int, targeted=True, shapes=None):
    """``n_examples`` hypothesis examples of ``group`` (anything with ``q``, ``dtype``,
    ``profile``, ``cells`` and ``evaluate(args, source, recipe) -> {cell: (ulp, score, bad)}``):
    plain exploration, or with ``targeted`` hill-climbing ``target()`` on each cell's largest ULP
    error and error over its allowance (``focus="any"``) or its count of non-finite and invariant
    findings (``focus="nonfinite"``)."""
    if n_examples <= 0:
        return
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    from .. import strategies

    strat = strategies.cases(group.q.name, group.dtype, group.profile, focus=focus, shapes=shapes)
    names = {i: c.target.name for i, c in enumerate(group.cells)}

    @settings(max_examples=n_examples, database=None, deadline=None, derandomize=False, print_blob=False,
              phases=[Phase.generate, Phase.target], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @hseed(seed)
    @given(strat)
    def probe(case):
        res = group.evaluate(case.args, source=f"search:{focus}", recipe=case.recipe)
        if not targeted:
            return
        for i, (top_ulp, top_score, bad) in res.items():
            if focus == "any":
                target(float(math.log2(1.0 + min(top_ulp, 1e300))), label=f"ulp:{names[i]}")
                target(float(math.log2(1.0 + min(top_score, 1e300))), label=f"score:{names[i]}")
            else:
                target(float(bad), label=f"nonfinite:{names[i]}")

    with strategies.without_local_constants():  # same seed, same inputs, whatever was imported
        probe()


# ---------------------------------------------------------------- public search API


@dataclass
class SearchResult:
    quantity: str
    dtype: str
    profile: str
    seed: int
    cells: dict            # cell key -> dict (see cell_dict)
    skipped: list
    examples: int
    seconds: float
    reference_errors: int = 0        # inputs skipped because the reference refused them (over budget included)
    reference_over_budget: int = 0   # of which: past the deterministic precision budget

    @property
    def worst(self) -> dict:
        """{metric: worst-case dict} of the first cell (the single-target case of the gate)."""
        if not self.cells:
            return {}
        return next(iter(self.cells.values()))["worst"]

    def cell(self, key=None) -> dict:
        if key is None:
            return next(iter(self.cells.values()))
        return self.cells[key]


def search(quantity, target, dtype="float32", profile="default", seed=0, *, framework=None, device=None,
           examples=None, nonfinite_examples=None, use_corpus=True, extra_cases=(), corpus_extra=(), shrink=True,
           shrink_steps=None, encode=True, judge_profile="default") -> SearchResult:
    """Adversarial search of ``quantity`` in ``dtype`` on ``target``; the worst inputs per metric.

    ``target``: a backend name ("torch"), a ``(backend, variant)`` pair, a backend module, an
    ``Op`` (with ``framework`` naming the backend whose arrays it takes), a list of
    :class:`Target`, or a plain callable (numpy arrays in, array out; or framework arrays when
    ``framework`` is given). ``examples``/``nonfinite_examples`` override the profile's example
    counts; ``extra_cases``: more ``(label, args)`` inputs run before the search;
    ``corpus_extra``: regression entries ``(label, dtype, args_lists)`` for
    :func:`infoaudit.corpus.cases` (``run --corpus-from``; kept whatever their size);
    ``judge_profile``: the judging profile of the verdicts ("default" or "strict"). With
    ``use_corpus`` the fixed cases are the gate's probes (:func:`.gate.probes`, the inputs on
    which each textbook instability shows) and the shared corpus. Returns a
    :class:`SearchResult` whose ``cells[key]`` holds the summary (max/p99 ULP, max relative
    error, non-finite counts by class, invariant findings, the grades and the verdict) and
    ``worst[metric]`` with the original and the shrunk reproducer (arrays encoded as JSON-able
    dicts when ``encode``).
    """
    t0 = time.perf_counter()
    q = Q.get(quantity)
    d = dtype_name(dtype)
    prof = PROFILE_SETTINGS[profile]
    targets, skipped = as_targets(q, target, d, device, framework)
    group = Group(q, d, targets, profile, seed, prof["points"], judge_profile)
    group.shrink_elements = prof.get("shrink_elements")
    group.reference_work = prof.get("reference_work", DEFAULT_REFERENCE_WORK)
    fixed = []
    if use_corpus:
        from .. import corpus
        from ..gate.core import probes

        cmax = prof.get("corpus_max")
        keep = {lab for lab, _, _ in corpus_extra}
        fixed += [(label, tuple(args)) for label, args in probes(q, d)]
        fixed += [(f"corpus: {label}", args) for label, args in corpus.cases(q, d, extra=list(corpus_extra))
                  if cmax is None or label in keep or sum(np.size(a) for a in args if isinstance(a, np.ndarray)) <= cmax]
    fixed += [(f"case: {label}", tuple(args)) for label, args in extra_cases]
    for labels, args in stack_cases(q, fixed):
        group.evaluate(args, source=labels)
    n_ulp = prof["ulp_examples"] if examples is None else examples
    n_nf = prof["nonfinite_examples"] if nonfinite_examples is None else nonfinite_examples
    # half plain exploration, stratified over the shape menu (every shape, the longest rows
    # included, gets its share), half hill-climbing with target() on the ULP error and the
    # error over its allowance
    from .. import strategies

    menu = strategies.shape_menu(q, profile)
    n_explore = n_ulp // 2
    for k, shape in enumerate(menu):
        share = n_explore // len(menu) + (1 if k < n_explore % len(menu) else 0)
        hypothesis_phase(group, "any", share, group_seed(seed, q.name, d, "explore", k), targeted=False,
                         shapes=[shape])
    hypothesis_phase(group, "any", n_ulp - n_explore, group_seed(seed, q.name, d, "ulp"))
    hypothesis_phase(group, "nonfinite", n_nf, group_seed(seed, q.name, d, "nonfinite"))
    if shrink:
        shrink_findings(group, prof["shrink_steps"] if shrink_steps is None else shrink_steps)
    compare_on_findings(group)
    cells = {c.target.key(q.name, d): cell_dict(group, c, encode) for c in group.cells}
    return SearchResult(q.name, d, profile, seed, cells, [list(s) for s in skipped], group.examples,
                        time.perf_counter() - t0, group.reference_errors, group.reference_over_budget)


def stack_cases(q, cases):
    """Concatenate fixed cases with equal trailing shapes and scalars along the batch axis.

    Returns [(labels per batch row, args)]: one backend call per distinct shape instead of one
    per case (jit backends compile once per shape)."""
    buckets = {}
    order = []
    for label, args in cases:
        key = []
        ok = True
        for a, arg in zip(args, q.args):
            if isinstance(a, np.ndarray):
                if a.ndim < 1:
                    ok = False
                key.append(("a", a.dtype.str, a.shape[1:]))
            else:
                key.append(("s", repr(a)))
        key = tuple(key) if ok else (id(args),)
        if key not in buckets:
            buckets[key] = []
            order.append(key)
        buckets[key].append((label, args))
    out = []
    for key in order:
        items = buckets[key]
        if len(items) == 1 or isinstance(key[0], int):
            for label, args in items:
                first = next(a for a in args if isinstance(a, np.ndarray))
                out.append(([label] * max(1, first.shape[0]), tuple(args)))
            continue
        labels = []
        for label, args in items:
            first = next(a for a in args if isinstance(a, np.ndarray))
            labels += [label] * first.shape[0]
        cols = []
        for i, _ in enumerate(q.args):
            vals = [args[i] for _, args in items]
            cols.append(np.concatenate(vals, axis=0) if isinstance(vals[0], np.ndarray) else vals[0])
        out.append((labels, tuple(cols)))
    return out


def cell_dict(group: Group, c: CellState, encode=True) -> dict:
    from ..results import schema as R

    t = c.target
    ulps = np.concatenate(c.ulps) if c.ulps else np.zeros(0)
    status = "unsupported" if t.unsupported else ("ok" if c.examples else "no-data")
    d = {
        "quantity": c.quantity, "backend": t.backend, "variant": t.variant, "dtype": c.dtype, "device": t.device,
        "call": t.call, "native": bool(t.native), "note": t.note, "status": status,
        "reason": t.unsupported or "", "errors": t.errors, "first_error": t.first_error,
        "examples": c.examples, "elements": c.elements,
        "max_ulp": float(c.max_ulp), "p99_ulp": float(np.percentile(ulps, 99)) if ulps.size else 0.0,
        "median_ulp": float(np.median(ulps)) if ulps.size else 0.0,
        "max_rel": float(c.max_rel), "max_abs": float(c.max_abs), "max_score": R.num(c.max_score),
        **group.verdict(c),
        "flush_to_zero": c.ftz.describe() if c.ftz is not None else "",
        "nonfinite": dict(sorted(c.nonfinite.items())), "nonfinite_total": int(sum(c.nonfinite.values())),
        "invariants": dict(sorted(c.invariants.items())), "invariant_total": int(sum(c.invariants.values())),
        "search_hits": dict(sorted(c.search_hits.items())),
        "notes": sorted(c.notes),
        "x_label": magnitude_label(c.quantity),
        "points": [[R.num(_sig(a)), R.num(_sig(b)), R.num(_sig(r))] for a, b, r in c.points],
        "worst": {m: R.worst_dict(w, encode) for m, w in c.worst.items()},
    }
    if encode:
        _attach_snippets(d, t)
    return d


def _sig(x, digits=4):
    """x rounded to a few significant digits (plot data only)."""
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def _attach_snippets(d, target):
    """A verified copy-paste reproducer for every shrunk finding of the cell."""
    from ..reproducers.values import best_snippet

    if target.fn is None or d["backend"].startswith("user"):
        return
    for m, w in d["worst"].items():
        case = (w or {}).get("shrunk")
        if not case or case.get("args") is None:
            continue
        try:
            _, kind, ok = best_snippet(d, case, target.mod)
        except Exception:  # noqa: BLE001
            kind, ok = "none", False
        case["snippet_kind"] = kind  # the text is regenerated from the arguments by the report
        case["reproduced"] = bool(ok)


# ---------------------------------------------------------------- process-pool tasks


def profile_variants(targets, skipped, profile):
    """The targets the profile audits: all variants, or (``variants="first"``) each backend's
    primary op per device; the others are appended to ``skipped`` with the reason."""
    if PROFILE_SETTINGS[profile].get("variants") != "first":
        return list(targets)
    seen, firsts = set(), []
    for t in targets:
        if (t.backend, t.device) not in seen:
            seen.add((t.backend, t.device))
            firsts.append(t)
        else:
            skipped.append((t.backend, f"variant {t.variant!r}: not audited by the {profile} profile"))
    return firsts


def user_targets(spec, quantity, dtype, framework=None, device=None):
    """Targets of a user's implementation ``MODULE:FUNCTION`` (imported as ``infoaudit gate
    --impl`` imports it, :func:`.gate_cmd.load_impl`; ``framework`` inferred as the gate infers
    it). Raises :class:`.gate_cmd.UsageError` with one line when it does not import."""
    from ..gate.cli import load_impl
    from ..gate.core import infer_framework

    fn = load_impl(spec)
    targets, _ = as_targets(quantity, fn, dtype, device, framework or infer_framework(fn))
    for t in targets:
        t.call = spec
    return targets


def run_group(task: dict) -> dict:
    """Process-pool task: audit one (quantity, dtype) on the installed backends (``backends``)
    and, with ``impl`` (``MODULE:FUNCTION``) and ``framework``, on a user's implementation;
    ``judge_profile``: the judging profile of the verdicts. Returns a JSON-able dict."""
    t0 = time.perf_counter()
    backends = task.get("backends")
    targets, skipped = [], []
    if backends or not task.get("impl"):
        targets, skipped = targets_for(task["quantity"], task["dtype"], backends, task.get("devices"))
        targets = profile_variants(targets, skipped, task["profile"])
    if task.get("impl"):
        targets = user_targets(task["impl"], task["quantity"], task["dtype"], task.get("framework"),
                               (task.get("devices") or [None])[0]) + targets
    regressions = [(label, task["dtype"], lists) for label, lists in task.get("extra_lists") or ()]
    res = search(task["quantity"], targets, task["dtype"], task["profile"], task["seed"],
                 use_corpus=task.get("corpus", True), extra_cases=list(task.get("extra_cases", ())),
                 corpus_extra=regressions, examples=task.get("examples"),
                 nonfinite_examples=task.get("nonfinite_examples"),
                 judge_profile=task.get("judge_profile", "default"))
    return {"group": f"{task['quantity']}|{task['dtype']}", "quantity": task["quantity"], "dtype": task["dtype"],
            "cells": res.cells, "skipped": [list(s) for s in skipped], "examples": res.examples,
            "reference_errors": res.reference_errors, "reference_over_budget": res.reference_over_budget,
            "seconds": time.perf_counter() - t0}


PANEL_SIZES = {"quick": (16, 256, 4096), "default": (16, 128, 1024, 4096, 16384, 50257),
               "thorough": (16, 128, 1024, 4096, 16384, 50257, 131072)}
PANEL_ROWS = {"quick": 2, "default": 4, "thorough": 8}


def shared_logits(rng, shape, scale):
    """Logits exactly representable in float16, bfloat16, float32 and float64 (bfloat16 values
    within float16's normal range, or 0): the same inputs in every dtype."""
    v = cast(rng.standard_normal(shape) * scale, "bfloat16").astype(np.float64)
    v = np.where(np.abs(v) < 2.0 ** -14, 0.0, v)
    return np.clip(v, -60000.0, 60000.0)


def softmax_precision(task: dict) -> dict:
    """The FP16 / BF16 / FP32 / FP64 softmax panel: every backend's softmax in every dtype on the
    *same* logits (representable in all four formats), against one exact reference, per
    vocabulary size. Returns a JSON-able dict with one row per (backend, variant, dtype, n, scale)."""
    from ..results import schema as R

    t0 = time.perf_counter()
    profile = task.get("profile", "default")
    sizes = tuple(task.get("sizes") or PANEL_SIZES[profile])
    nrows = int(task.get("rows") or PANEL_ROWS[profile])
    dtypes = task.get("dtypes") or ["float16", "bfloat16", "float32", "float64"]
    q = Q.get("softmax")
    rng = np.random.default_rng(group_seed(task.get("seed", 0), "softmax_precision"))
    targets = {d: targets_for(q, d, task.get("backends"))[0] for d in dtypes}
    work = PROFILE_SETTINGS[profile].get("reference_work", DEFAULT_REFERENCE_WORK)
    rows = []
    over_budget = []
    for scale in (1.0, 4.0):
        for n in sizes:
            z = shared_logits(rng, (nrows, n), scale)
            try:
                exact = exact_within_budget(q, [z], work)
            except ReferenceOverBudget:
                over_budget.append([n, scale])
                continue
            for d in dtypes:
                zd = cast(z, d)
                assert np.array_equal(zd.astype(np.float64), z)
                for t in targets[d]:
                    if t.unsupported:
                        continue
                    try:
                        y, errs, _ = judge(q, t, [zd], exact, d, t.flush_probe(d))
                    except Unsupported as e:
                        t.unsupported = str(e)
                        continue
                    u = errs.ulp[np.isfinite(errs.ulp)]
                    r = errs.rel[np.isfinite(errs.rel)]
                    with np.errstate(invalid="ignore"):
                        sum_err = float(np.nanmax(np.abs(np.sum(y, axis=-1) - 1.0)))
                    rows.append({"backend": t.backend, "variant": t.variant, "device": t.device, "dtype": d, "n": n,
                                 "scale": scale, "max_ulp": R.num(u.max() if u.size else 0.0),
                                 "p99_ulp": R.num(np.percentile(u, 99) if u.size else 0.0),
                                 "mean_ulp": R.num(u.mean() if u.size else 0.0),
                                 "max_rel": R.num(r.max() if r.size else 0.0),
                                 "nonfinite": int((errs.nonfinite != "").sum()), "sum_err": R.num(sum_err)})
    unsupported = sorted({(t.backend, t.variant, d, t.unsupported) for d in dtypes for t in targets[d] if t.unsupported})
    return {"quantity": "softmax", "sizes": list(sizes), "rows_per_size": nrows, "scales": [1.0, 4.0],
            "input": "N(0, scale^2) logits rounded to bfloat16 and kept in float16's normal range: "
                     "exactly the same values in every dtype",
            "results": rows, "unsupported": [list(u) for u in unsupported], "reference_over_budget": over_budget,
            "seconds": round(time.perf_counter() - t0, 2)}


__all__ = ["search", "SearchResult", "Target", "targets_for", "run_group", "PROFILE_SETTINGS", "cell_key",
           "judge", "invariant_masks", "group_seed", "softmax_precision", "METRICS", "SHRUNK_METRICS",
           "hypothesis_phase", "shrink_findings", "compare_on_findings", "user_targets", "why_line", "scores",
           "reference_precision_cap", "exact_within_budget", "ReferenceOverBudget", "float_elements",
           "magnitude_bits"]
