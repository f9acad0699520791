"""Loading results documents and comparing cells: the one comparison behind ``infoaudit diff``,
``infoaudit gate --baseline`` and ``infoaudit run --corpus-from``.

Loading
-------
:func:`load_document` reads a results JSON (``schema = "infoaudit.results"``) and
:func:`load_gate_document` a gate JSON (``infoaudit gate --json``); both raise
:class:`DocumentError` (a ``ValueError``) with one clear line naming the file and the problem:
not found, unreadable, not JSON, another schema, a newer version, no ``cells`` map.

The "worse" rule (:func:`compare_cell`)
--------------------------------------
Two cells with the same key (``<quantity>|<backend>|<variant>|<dtype>|<device>[|grad]``) are
compared field by field. The NEW cell is **worse** than the OLD one when any of these holds:

1. **support**: OLD ran (``status`` ``ok``) and NEW did not (``unsupported``, ``no-data``, an
   error);
2. **non-finite**: NEW's ``nonfinite_total`` exceeds OLD's by more than ``nonfinite_slack``
   (default 0: any growth);
3. **invariants**: NEW's ``invariant_total`` exceeds OLD's by more than ``invariant_slack``
   (default 0);
4. **accuracy** (value cells): NEW's ``max_ulp`` > ``ulp_factor`` x OLD's **and** > ``ulp_floor``
   (defaults 2 and 4 ULP: the error at least doubled and is beyond a few ULP; a NaN or infinite
   ``max_ulp`` counts as infinite);
5. **gradient cells**: ``flushed`` grew, or ``max_cae`` > ``cae_factor`` x OLD's and > ``cae_floor``
   (defaults 2 and 64); where neither side has ``max_cae``, rule 4 on ``max_ulp``;
6. **grade / verdict** (when both cells carry one): a grade later in :data:`GRADE_ORDER` (the
   judge's order, :data:`infoaudit.judging.GRADES`: ``correctly_rounded < faithful < flushed <
   conditioned < envelope < unstable < invariant < nonfinite``), or a ``verdict`` that went from
   ``pass`` to ``fail``. Unknown grade names are reported as a change, never as worse.

The mirror images (NEW became supported, fewer non-finite results, error shrunk by the factor and
OLD's was beyond the floor, a better grade) make a cell **better**; a cell that is both (e.g. fewer
non-finite results but a larger error) is reported as worse. Any other difference in the compared
fields is **changed**; none is **same**. A cell only in one document is reported as such, and
counts as worse only with ``missing_is_worse`` (and then only when OLD's cell had run).

Findings (:func:`cell_findings`) are the same as the report's: each non-finite class and each
invariant with a count, and an ``accuracy`` finding: for graded cells (``grades`` present) when
some element is ``unstable`` (or, under the ``strict`` profile, ``envelope``), its case the cell's
worst-grade input; for older documents without grades (value cells) ``max_ulp >= 16`` or
``max_scaled >= 16``, (gradient cells) ``flushed > 0`` or ``max_cae >= 1024``. Each carries the
cell's stored worst case (the shrunk reproducer where there is one).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

from ..judging.grades import GRADES

RESULTS_SCHEMA = "infoaudit.results"
RESULTS_VERSION = 1
GATE_KEY = "infoaudit_gate"

# the finding thresholds of results documents without grades (the report before the one judge)
ULP_FINDING = 16.0
SCALED_FINDING = 16.0
CAE_FINDING = 1024.0

GRADE_ORDER = GRADES   # the judge's order, best to worst


class DocumentError(ValueError):
    """A document that cannot be used: the message is one line naming the file and the problem."""


# ---------------------------------------------------------------------------- loading


def _read_json(path, what):
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise DocumentError(f"{p}: not found") from None
    except IsADirectoryError:
        raise DocumentError(f"{p}: is a directory, not a {what} JSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DocumentError(f"{p}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        line = f" (line {e.lineno}, column {e.colno}: {e.msg})" if hasattr(e, "lineno") else ""
        raise DocumentError(f"{p}: not JSON{line}") from None


def load_document(path, *, schema=RESULTS_SCHEMA, max_version=RESULTS_VERSION) -> dict:
    """A results document (``infoaudit run``'s results.json), validated; :class:`DocumentError`
    with one line otherwise."""
    p = os.fspath(path)
    doc = _read_json(p, "results")
    if not isinstance(doc, dict):
        raise DocumentError(f"{p}: not an infoaudit results file (a JSON {type(doc).__name__}, not an object)")
    if doc.get("schema") != schema:
        hint = " (an infoaudit gate JSON; diff compares results of `infoaudit run`)" if GATE_KEY in doc else ""
        raise DocumentError(f"{p}: not an infoaudit results file (schema {doc.get('schema')!r}, "
                            f"expected {schema!r}){hint}")
    try:
        version = int(doc.get("version", 0))
    except (TypeError, ValueError):
        raise DocumentError(f"{p}: results version {doc.get('version')!r} is not a number") from None
    if version > max_version:
        raise DocumentError(f"{p}: results version {version} is newer than this infoaudit reads ({max_version})")
    cells = doc.get("cells")
    if not isinstance(cells, dict):
        raise DocumentError(f"{p}: results file has no 'cells' map")
    for key, c in cells.items():
        if not isinstance(c, dict):
            raise DocumentError(f"{p}: cell {key!r} is not an object")
    return doc


def load_gate_document(path, quantity=None) -> dict:
    """A gate JSON (``infoaudit gate --json``) as a baseline: ``{dtype: cell}``; DocumentError
    with one line when missing, unreadable, not a gate result, or for another quantity."""
    p = os.fspath(path)
    try:
        doc = _read_json(p, "gate")
    except DocumentError as e:
        if str(e).endswith(": not found"):
            raise DocumentError(f"baseline {p!r} not found; record one with --json {p}") from None
        raise DocumentError(f"baseline {p!r} is not a gate JSON result: {str(e)[len(p) + 2:]}") from None
    if isinstance(doc, dict) and doc.get("schema") == RESULTS_SCHEMA:
        raise DocumentError(f"baseline {p!r} is not a gate JSON result (it is a results file of `infoaudit run`; "
                            "compare those with `infoaudit diff`)")
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), dict):
        raise DocumentError(f"baseline {p!r} is not a gate JSON result (no 'cells')")
    if quantity is not None and doc.get("quantity") not in (None, quantity):
        raise DocumentError(f"baseline {p!r} is for {doc.get('quantity')!r}, not {quantity!r}")
    return {k: v for k, v in doc["cells"].items() if isinstance(v, dict)}


# ---------------------------------------------------------------------------- numbers


def num(x):
    """A float from a JSON number or string ('inf', 'nan'); None stays None."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _inf_if_nan(x):
    return math.inf if x is not None and math.isnan(x) else x


def grew(old, new, factor=1.0, floor=0.0) -> bool:
    """``new > factor * old and new > floor`` (None counts as 0, NaN as +inf): the comparison of a
    "worse" rule, also used by ``gate --baseline``."""
    o = _inf_if_nan(num(old)) or 0.0
    n = _inf_if_nan(num(new)) or 0.0
    if n <= floor:
        return False
    if math.isinf(o):
        return False
    return n > factor * o


def shrank(old, new, factor=1.0, floor=0.0) -> bool:
    """The mirror of :func:`grew`: ``old > factor * new and old > floor``."""
    return grew(new, old, factor, floor)


def count_grew(old, new, slack=0) -> bool:
    return int(num(new) or 0) > int(num(old) or 0) + slack


# ---------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Rule:
    """The thresholds of the "worse" rule (module docstring)."""

    ulp_factor: float = 2.0
    ulp_floor: float = 4.0
    cae_factor: float = 2.0
    cae_floor: float = 64.0
    nonfinite_slack: int = 0
    invariant_slack: int = 0
    missing_is_worse: bool = False

    def describe(self) -> str:
        return (f"worse = became unsupported; or non-finite count grew by more than {self.nonfinite_slack}; or "
                f"invariant violations grew by more than {self.invariant_slack}; or max ULP > {self.ulp_factor:g}x "
                f"the old and > {self.ulp_floor:g} ULP (value cells); or flushed components grew, or max "
                f"condition-aware error > {self.cae_factor:g}x the old and > {self.cae_floor:g} (gradient cells); "
                f"or a worse grade / pass -> fail verdict"
                + ("; or a cell that ran before is missing" if self.missing_is_worse else ""))

    def as_dict(self) -> dict:
        return asdict(self)


def is_grad(cell) -> bool:
    return cell.get("kind") == "grad"


def cell_key(cell) -> str:
    key = "|".join(str(cell.get(k, "")) for k in ("quantity", "backend", "variant", "dtype", "device"))
    return key + ("|grad" if is_grad(cell) else "")


SUMMARY_FIELDS = ("status", "reason", "examples", "elements", "max_ulp", "p99_ulp", "max_rel", "max_scaled",
                  "max_cae", "nonfinite_total", "nonfinite", "invariant_total", "invariants", "flushed",
                  "grade", "grades", "verdict", "profile")


def cell_summary(cell) -> dict:
    """The fields the diff compares (absent ones left out)."""
    out = {}
    for k in SUMMARY_FIELDS:
        if k in cell and cell[k] is not None:
            out[k] = cell[k]
    return out


def _grade_rank(g):
    try:
        return GRADE_ORDER.index(str(g))
    except ValueError:
        return None


def compare_cell(old: dict, new: dict, rule: Rule = Rule()) -> dict:
    """``{"change": "worse" | "better" | "changed" | "same", "worse": [...], "better": [...],
    "changed": [...], "old": summary, "new": summary}``: reasons as short English clauses."""
    worse, better, changed = [], [], []
    os_, ns = old.get("status", "ok"), new.get("status", "ok")
    if os_ != ns:
        if os_ == "ok":
            worse.append(f"status ok -> {ns}" + (f" ({_short(new.get('reason'))})" if new.get("reason") else ""))
        elif ns == "ok":
            better.append(f"status {os_} -> ok")
        else:
            changed.append(f"status {os_} -> {ns}")
    both_ran = os_ == "ok" and ns == "ok"
    if both_ran:
        onf, nnf = int(num(old.get("nonfinite_total")) or 0), int(num(new.get("nonfinite_total")) or 0)
        if count_grew(onf, nnf, rule.nonfinite_slack):
            worse.append(f"non-finite {onf} -> {nnf}" + _classes(old.get("nonfinite"), new.get("nonfinite")))
        elif count_grew(nnf, onf, rule.nonfinite_slack):
            better.append(f"non-finite {onf} -> {nnf}" + _classes(old.get("nonfinite"), new.get("nonfinite")))
        elif (old.get("nonfinite") or {}) != (new.get("nonfinite") or {}):
            changed.append(f"non-finite classes {_cls(old.get('nonfinite'))} -> {_cls(new.get('nonfinite'))}")
        oi, ni = int(num(old.get("invariant_total")) or 0), int(num(new.get("invariant_total")) or 0)
        if count_grew(oi, ni, rule.invariant_slack):
            worse.append(f"invariant violations {oi} -> {ni}")
        elif count_grew(ni, oi, rule.invariant_slack):
            better.append(f"invariant violations {oi} -> {ni}")
        elif (old.get("invariants") or {}) != (new.get("invariants") or {}):
            changed.append(f"invariants {_cls(old.get('invariants'))} -> {_cls(new.get('invariants'))}")
        if is_grad(old) or is_grad(new):
            of, nf = int(num(old.get("flushed")) or 0), int(num(new.get("flushed")) or 0)
            if nf > of:
                worse.append(f"flushed components {of} -> {nf}")
            elif nf < of:
                better.append(f"flushed components {of} -> {nf}")
            if old.get("max_cae") is not None or new.get("max_cae") is not None:
                _factor_rule("max condition-aware error", old.get("max_cae"), new.get("max_cae"),
                             rule.cae_factor, rule.cae_floor, worse, better, changed)
            else:
                _factor_rule("max ULP", old.get("max_ulp"), new.get("max_ulp"), rule.ulp_factor, rule.ulp_floor,
                             worse, better, changed)
        else:
            _factor_rule("max ULP", old.get("max_ulp"), new.get("max_ulp"), rule.ulp_factor, rule.ulp_floor,
                         worse, better, changed)
        orel, nrel = num(old.get("max_rel")), num(new.get("max_rel"))
        if orel != nrel and not (orel is not None and nrel is not None and math.isnan(orel) and math.isnan(nrel)) \
                and not any(r.startswith("max ULP") for r in worse + better + changed):
            changed.append(f"max rel {fmt(orel)} -> {fmt(nrel)}")
    op, np_ = old.get("profile"), new.get("profile")
    if op and np_ and op != np_:  # judged under other profiles: the verdicts are not comparable
        changed.append(f"judging profile {op} -> {np_}")
    for field in ("grade", "verdict"):
        og, ng = old.get(field), new.get(field)
        if og is None or ng is None or og == ng:
            continue
        if field == "verdict" and op and np_ and op != np_:
            changed.append(f"verdict {og} -> {ng}")
            continue
        if field == "verdict":
            (worse if (og, ng) == ("pass", "fail") else better if (og, ng) == ("fail", "pass") else changed).append(
                f"verdict {og} -> {ng}")
            continue
        ro, rn = _grade_rank(og), _grade_rank(ng)
        if ro is None or rn is None:
            changed.append(f"grade {og} -> {ng}")
        else:
            (worse if rn > ro else better).append(f"grade {og} -> {ng}")
    change = "worse" if worse else "better" if better else "changed" if changed else "same"
    return {"change": change, "worse": worse, "better": better, "changed": changed,
            "old": cell_summary(old), "new": cell_summary(new)}


def _factor_rule(name, old, new, factor, floor, worse, better, changed):
    o, n = num(old), num(new)
    if o is None and n is None:
        return
    if grew(o, n, factor, floor):
        worse.append(f"{name} {fmt(o)} -> {fmt(n)}")
    elif shrank(o, n, factor, floor):
        better.append(f"{name} {fmt(o)} -> {fmt(n)}")
    elif o != n and not (o is not None and n is not None and math.isnan(o) and math.isnan(n)):
        changed.append(f"{name} {fmt(o)} -> {fmt(n)}")


def fmt(x) -> str:
    """A number for a one-line message: '-', 'NaN', '+-inf', '0', 4 significant digits, or e-notation."""
    x = num(x) if not isinstance(x, float) else x
    if x is None:
        return "-"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def _cls(d) -> str:
    d = d or {}
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) + "}" if d else "none"


def _classes(a, b) -> str:
    return f" ({_cls(a)} -> {_cls(b)})" if (a or {}) != (b or {}) else ""


def _short(s, n=160) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


# ---------------------------------------------------------------------------- findings


def _case(w):
    return (w or {}).get("shrunk") or w


def cell_findings(cell) -> dict:
    """``{finding id: {"metric", "class", "score", "case"}}`` of one cell that ran (see the module
    docstring); ``case`` is the stored worst case (shrunk where there is one) or None."""
    if cell.get("status", "ok") != "ok":
        return {}
    worst = cell.get("worst") or {}
    out = {}

    def add(fid, metric, klass, score, wkey):
        w = worst.get(wkey)
        if w and klass and w.get("class") not in (None, "", klass):
            w = None  # the stored worst case is of another class
        out[fid] = {"metric": metric, "class": klass, "score": score, "case": _case(w) if w else None}

    for klass, n in sorted((cell.get("nonfinite") or {}).items()):
        if n:
            add(f"nonfinite:{klass}", "nonfinite", klass, int(n), "nonfinite")
    for name, n in sorted((cell.get("invariants") or {}).items()):
        if n:
            add(f"invariant:{name}", "invariant", name, int(n), "invariant")
    if cell.get("grades") is not None:
        # graded cells: an accuracy finding where an element's grade fails its profile by error
        bad = ("unstable",) + (("envelope",) if cell.get("profile") == "strict" else ())
        if any((cell.get("grades") or {}).get(g) for g in bad):
            add("accuracy", "grade", "", _inf_if_nan(num(cell.get("max_ulp"))), "grade")
    elif is_grad(cell):
        if int(num(cell.get("flushed")) or 0):
            add("flushed", "flushed", "", int(num(cell.get("flushed"))), "flushed")
        cae = num(cell.get("max_cae"))
        if cae is not None and _inf_if_nan(cae) >= CAE_FINDING:
            add("accuracy", "cae", "", cae, "cae")
    else:
        ulp, scaled = _inf_if_nan(num(cell.get("max_ulp"))), _inf_if_nan(num(cell.get("max_scaled")))
        if (scaled or 0) >= SCALED_FINDING:
            add("accuracy", "scaled", "", ulp, "scaled")
        elif (ulp or 0) >= ULP_FINDING:
            add("accuracy", "ulp", "", ulp, "ulp")
    return out


def worst_cases(cell) -> list:
    """Every stored worst case of a cell as (metric, case) with arguments, shrunk where possible
    (the inputs ``run --corpus-from`` replays)."""
    out = []
    for metric, w in (cell.get("worst") or {}).items():
        if not isinstance(w, dict):
            continue
        case = _case(w)
        if case.get("args") is None:
            continue
        out.append((metric, case))
    return out


def compare_findings(old: dict, new: dict, rule: Rule = Rule()) -> dict:
    """New / fixed / changed findings of two cells that both ran: ``{"new": [...], "fixed": [...],
    "changed": [...]}``, each ``{"id", "metric", "class", "old_score", "new_score", "case", "side"}``
    (``side``: whose stored case ``case`` is)."""
    fo, fn = cell_findings(old), cell_findings(new)
    res = {"new": [], "fixed": [], "changed": []}
    for fid in sorted(set(fo) | set(fn)):
        a, b = fo.get(fid), fn.get(fid)
        base = {"id": fid, "metric": (b or a)["metric"], "class": (b or a)["class"],
                "old_score": a["score"] if a else None, "new_score": b["score"] if b else None}
        if a is None:
            res["new"].append(dict(base, case=b["case"], side="new"))
        elif b is None:
            res["fixed"].append(dict(base, case=a["case"], side="old"))
        else:
            if base["metric"] in ("ulp", "scaled", "cae", "grade"):
                f, fl = (rule.cae_factor, rule.cae_floor) if base["metric"] == "cae" else (rule.ulp_factor,
                                                                                            rule.ulp_floor)
                moved = grew(a["score"], b["score"], f, fl) or shrank(a["score"], b["score"], f, fl)
            else:
                moved = a["score"] != b["score"]
            if moved:
                res["changed"].append(dict(base, case=b["case"], side="new", old_case=a["case"]))
    return res


# ---------------------------------------------------------------------------- matching two documents


def parse_match(spec: str) -> tuple:
    """``FIELD:OLD=NEW`` (``device:cpu=cuda``, ``variant:eager=jit``) -> (field, old, new)."""
    field, sep, rest = spec.partition(":")
    old, sep2, new = rest.partition("=")
    if not sep or not sep2 or field not in ("backend", "variant", "dtype", "device") or not old or not new:
        raise ValueError(f"--match {spec!r}: expected FIELD:OLD=NEW with FIELD one of backend, variant, dtype, "
                         "device (e.g. device:cpu=cuda, variant:eager=jit)")
    return field, old, new


def match_cells(old_cells: dict, new_cells: dict, matches=()) -> tuple:
    """(pairs {key: (old, new)}, only_old {key: cell}, only_new {key: cell}) keyed by NEW's keys.

    ``matches``: (field, old_value, new_value) triples; OLD's cells with ``field == old_value`` are
    compared with NEW's cells with ``field == new_value`` (CPU vs CUDA, eager vs jit, one dtype
    against another); OLD's cells that already had ``new_value`` and NEW's cells with ``old_value``
    are left out of such a comparison."""
    def rekey(cell, renames):
        c = dict(cell)
        for field, a, b in renames:
            if c.get(field) == a:
                c[field] = b
        return cell_key(c)

    olds, news = {}, {}
    for key, c in old_cells.items():
        if any(c.get(f) == b and a != b for f, a, b in matches):
            continue
        olds[rekey(c, matches) if matches else key] = c
    for key, c in new_cells.items():
        if any(c.get(f) == a and a != b for f, a, b in matches):
            continue
        news[key] = c
    pairs = {k: (olds[k], news[k]) for k in news if k in olds}
    only_old = {k: c for k, c in olds.items() if k not in news}
    only_new = {k: c for k, c in news.items() if k not in olds}
    return pairs, only_old, only_new


__all__ = ["DocumentError", "load_document", "load_gate_document", "Rule", "compare_cell", "cell_findings",
           "compare_findings", "match_cells", "parse_match", "cell_key", "cell_summary", "worst_cases", "grew",
           "shrank", "count_grew", "num", "fmt", "GRADE_ORDER", "RESULTS_SCHEMA"]
