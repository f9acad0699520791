"""What the report shows, derived from a results document (JSON) only.

The report leads with the one judge's verdicts (:mod:`infoaudit.judging`, docs/grades.md):

* :func:`summary` -- the executive summary: cells per verdict and grade (unstable, non-finite,
  invariant, envelope-only, conditioned or better), forward values and gradients apart;
* :func:`grade_matrix` -- quantity x (backend, dtype, kind): the worst grade over the backend's
  variants, with each variant's grade, verdict and numbers (shown on hover and in the
  per-quantity tables);
* :func:`findings` -- ranked by severity: non-finite results, broken invariants, ``unstable``
  elements (beyond both allowances), then ``envelope`` elements (within a stable algorithm's
  envelope, beyond what the conditioning forces); each with its grade, the condition number
  kappa = N / |y*| and the best other implementation on the same input;
  identical findings of several variants of one backend are merged;
* :func:`ten_worst` -- the ten worst findings by relative error at well-conditioned inputs
  (kappa <= ``WELL_CONDITIONED``);
* :func:`matrix` -- the raw worst-max-ULP matrix (the appendix);
* :func:`quantity_rows`, :func:`panel_rows` -- the per-quantity and FP16/BF16/FP32 softmax tables;
* :func:`compiled_rows`, :func:`autocast_rows` -- compiled cells against eager (the error ratio
  against the exact value) and "which losses are safe to leave to autocast".
"""
from __future__ import annotations

import json
import math

from ..judging.grades import CODE, GRADES, WELL_CONDITIONED

SEVERITY = ("non-finite", "invariant", "unstable", "envelope only")
KINDS = ("value", "grad")
DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
TOP = 10   # findings in the executive summary's table

# the word shown in a grade-matrix cell, and the legend's line per grade
GRADE_WORD = {"correctly_rounded": "rounded", "faithful": "faithful", "flushed": "flushed",
              "conditioned": "conditioned", "envelope": "envelope", "unstable": "UNSTABLE",
              "invariant": "INVARIANT", "nonfinite": "NaN/inf"}
GRADE_MEANING = {
    "correctly_rounded": "<= 0.5 ULP of the exact value",
    "faithful": "< 1 ULP",
    "flushed": "0 where the exact value is subnormal, on a platform that flushes subnormals (probed)",
    "conditioned": "within c(n) u (N + |y*|): what the problem's conditioning forces",
    "envelope": "within c(n) u S: what a stable algorithm for the formula loses, beyond the conditioning",
    "unstable": "beyond both allowances: an error the algorithm adds",
    "invariant": "breaks a law of the quantity (a bound, softmax rows summing to 1)",
    "nonfinite": "NaN or inf where the exact value is finite (or finite where it is not)",
}
# colour class of each grade (CSS classes of report.html; emoji squares in report.md)
GRADE_CLASS = {g: "g-" + g for g in GRADES}
GRADE_EMOJI = {"correctly_rounded": "\U0001F7E9", "faithful": "\U0001F7E9", "flushed": "\U0001F7E6",
               "conditioned": "\U0001F7E8", "envelope": "\U0001F7E7", "unstable": "\U0001F7E5",
               "invariant": "\U0001F7E5", "nonfinite": "\U0001F7EA"}


def f(x):
    """A float from a JSON number or string ('inf', 'nan'); None stays None."""
    if x is None:
        return None
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return None
    return float(x)


def fmt_num(x, digits=3) -> str:
    x = f(x)
    if x is None:
        return "-"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


def fmt_ulp(x) -> str:
    """A ULP count: below 0.001 ULP (the exact value's own double-double rounding) shown as 0."""
    v = f(x)
    if v is not None and not math.isnan(v) and abs(v) < 1e-3:
        return "0"
    return fmt_num(x, 3)


def fmt_pct(x) -> str:
    """A relative error as a percentage ('159%', '0.012%')."""
    x = f(x)
    if x is None:
        return "-"
    if math.isnan(x) or math.isinf(x):
        return fmt_num(x)
    return f"{fmt_num(100 * x, 3)}%"


def fmt_exact(x) -> str:
    x = f(x)
    if x is None:
        return "-"
    if math.isnan(x) or math.isinf(x):
        return fmt_num(x)
    return repr(x)


def grade_rank(g) -> int:
    """Position of a grade name in the judge's order (-1 for none or an unknown name)."""
    return CODE.get(g, -1) if g else -1


def is_grad(c) -> bool:
    return c.get("kind") == "grad"


def value_cells(doc) -> dict:
    return {k: c for k, c in doc["cells"].items() if not is_grad(c)}


def backends_of(doc, kind=None):
    order = list(doc.get("config", {}).get("backends") or [])
    for c in doc["cells"].values():
        if c["backend"] not in order:
            order.append(c["backend"])
    if kind is None:
        return order
    have = {c["backend"] for c in doc["cells"].values() if (c.get("kind") or "value") == kind}
    return [b for b in order if b in have]


def quantities_of(doc):
    order = list(doc.get("config", {}).get("quantities") or [])
    for c in doc["cells"].values():
        if c["quantity"] not in order:
            order.append(c["quantity"])
    return order


def dtypes_of(doc):
    ds = {c["dtype"] for c in doc["cells"].values()}
    return [d for d in DTYPE_ORDER if d in ds]


def columns(doc) -> list:
    """[(backend, dtype, kind)]: forward values of every backend, then gradients (kind "grad")."""
    ds = dtypes_of(doc)
    return [(b, d, k) for k in KINDS for b in backends_of(doc, k) for d in ds]


def column_label(b, d, kind) -> str:
    short = d.replace("bfloat16", "bf16").replace("float", "f")
    return f"{b} {short}" if kind == "value" else f"{b} grad {short}"


def judge_profile(doc) -> str:
    """The judging profile of the document's verdicts."""
    cfg = doc.get("config", {})
    if cfg.get("judge_profile"):
        return cfg["judge_profile"]
    return next((c.get("profile") for c in doc["cells"].values() if c.get("profile")), "default")


# ---------------------------------------------------------------- verdicts


def summary(doc) -> dict:
    """Cells per verdict and grade: ``{"value": {...}, "grad": {...}}``, each with ``cells`` (that
    ran and were judged), ``fail``, ``pass``, ``unstable`` / ``nonfinite`` / ``invariant`` (cells
    with at least one element of that grade), ``envelope_only`` (the worst element is
    ``envelope``: beyond the conditioning, within a stable algorithm's envelope),
    ``conditioned_or_better`` and ``by_grade`` (cells per worst grade)."""
    out = {}
    for kind in KINDS:
        s = {"cells": 0, "fail": 0, "pass": 0, "unstable": 0, "nonfinite": 0, "invariant": 0, "envelope_only": 0,
             "conditioned_or_better": 0, "by_grade": {}, "ungraded": 0}
        for c in doc["cells"].values():
            if (c.get("kind") or "value") != kind or c.get("status") != "ok":
                continue
            g = c.get("grade")
            if c.get("verdict") is None and g is None:
                s["ungraded"] += 1
                continue
            s["cells"] += 1
            s[c.get("verdict") or "pass"] += 1
            grades = c.get("grades") or {}
            for name in ("unstable", "nonfinite", "invariant"):
                if grades.get(name):
                    s[name] += 1
            if g == "envelope":
                s["envelope_only"] += 1
            elif g is not None and grade_rank(g) <= CODE["conditioned"]:
                s["conditioned_or_better"] += 1
            if g:
                s["by_grade"][g] = s["by_grade"].get(g, 0) + 1
        s["by_grade"] = {g: s["by_grade"][g] for g in GRADES if g in s["by_grade"]}
        out[kind] = s
    return out


def grade_matrix(doc) -> dict:
    """{(quantity, backend, dtype, kind): {grade, verdict, status, variants: [...], reasons}}: the
    worst grade over the backend's variants (None where no variant was graded), "fail" when any
    variant fails; ``variants`` holds each variant's grade, verdict, grades, numbers and why."""
    out = {}
    for c in doc["cells"].values():
        kind = c.get("kind") or "value"
        k = (c["quantity"], c["backend"], c["dtype"], kind)
        e = out.setdefault(k, {"grade": None, "verdict": None, "status": "unsupported", "variants": [],
                               "reasons": []})
        if c["status"] != "ok":
            e["reasons"].append(f"{c['variant']}: {c.get('reason') or c['status']}")
            continue
        e["status"] = "ok"
        g = c.get("grade")
        if grade_rank(g) > grade_rank(e["grade"]):
            e["grade"] = g
        v = c.get("verdict")
        if v == "fail" or (v == "pass" and e["verdict"] is None):
            e["verdict"] = v
        e["variants"].append({"variant": c["variant"], "grade": g, "verdict": v, "grades": c.get("grades") or {},
                              "max_ulp": f(c.get("max_ulp")), "max_rel": f(c.get("max_rel")),
                              "examples": c.get("examples", 0), "elements": c.get("elements", 0),
                              "failing": c.get("failing", 0), "why": c.get("why", ""),
                              "max_cae": f(c.get("max_cae"))})
    return out


def grades_text(grades: dict) -> str:
    """'439 correctly_rounded, 24 faithful, 42 unstable' (best to worst)."""
    return ", ".join(f"{grades[g]} {g}" for g in GRADES if grades.get(g)) or "none judged"


def matrix_title(e) -> str:
    """The hover text of a grade-matrix cell: each variant's verdict, grade and numbers."""
    if e["status"] != "ok":
        return "; ".join(e["reasons"]) or "not run"
    parts = []
    for v in e["variants"]:
        head = f"{v['variant']}: {v['grade'] or 'no grade'}"
        if v["verdict"]:
            head += f" ({v['verdict'].upper()})"
        nums = f"max {fmt_num(v['max_ulp'], 3)} ULP, max relative error {fmt_num(v['max_rel'], 3)}"
        if v.get("max_cae") is not None:
            nums += f", max condition-aware error {fmt_num(v['max_cae'], 3)}"
        parts.append(f"{head}; {nums}; {v['examples']} inputs, {v['elements']} elements: "
                     f"{grades_text(v['grades'])}" + (f". {v['why']}" if v["why"] else ""))
    return "\n".join(parts)


# ---------------------------------------------------------------- the raw ULP matrix (appendix)


def matrix(doc) -> dict:
    """{(quantity, backend, dtype, kind): {max_ulp, max_cae, nonfinite, invariant, status, variants,
    examples, reasons}}: the worst max ULP over the backend's variants (gradient cells: also the
    worst condition-aware error; ``invariant`` counts their flushed components)."""
    out = {}
    for c in doc["cells"].values():
        kind = c.get("kind") or "value"
        k = (c["quantity"], c["backend"], c["dtype"], kind)
        e = out.setdefault(k, {"max_ulp": None, "max_cae": None, "nonfinite": 0, "invariant": 0,
                               "status": "unsupported", "variants": 0, "examples": 0, "reasons": []})
        if c["status"] != "ok":
            e["reasons"].append(f"{c['variant']}: {c.get('reason') or c['status']}")
            continue
        e["status"] = "ok"
        e["variants"] += 1
        e["examples"] += c["examples"]
        mu = f(c["max_ulp"])
        e["max_ulp"] = mu if e["max_ulp"] is None else max(e["max_ulp"], mu)
        if kind == "grad":
            mc = f(c.get("max_cae")) or 0.0
            e["max_cae"] = mc if e["max_cae"] is None else max(e["max_cae"], mc)
        e["nonfinite"] += c["nonfinite_total"]
        e["invariant"] += c.get("flushed", 0) if kind == "grad" else c.get("invariant_total", 0)
    return out


def ulp_class(u) -> str:
    """Colour class of a max-ULP figure."""
    if u is None:
        return "na"
    if u <= 0.5:
        return "cr"      # correctly rounded
    if u <= 4:
        return "good"
    if u <= 64:
        return "fair"
    if u <= 4096:
        return "poor"
    return "bad"


# ---------------------------------------------------------------- findings


def _case(w):
    return (w or {}).get("shrunk") or w


def best_other(case) -> dict | None:
    """The other cell of the group that did best on the same input (fewest ULPs), or None."""
    best = None
    for o in case.get("others") or ():
        u = f(o.get("ulp"))
        if u is None or math.isnan(u):
            continue
        if best is None or u < f(best["ulp"]):
            best = o
    return best


def best_text(b) -> str:
    """'scipy log_expit (scipy.special.log_expit(...)): 1.2 ULP, faithful' (the call when short)."""
    if not b:
        return ""
    who = f"{b['backend']} {b['variant']}"
    call = b.get("call") or ""
    head = f"{who} ({call})" if call and len(call) <= 60 else who
    return f"{head}: {fmt_ulp(b.get('ulp'))} ULP, {b.get('grade', '')}"


def _value_findings(key, c) -> list:
    out = []
    worst = c.get("worst") or {}
    seen = set()
    for metric in ("nonfinite", "invariant", "grade", "well_conditioned"):
        w = worst.get(metric)
        if not w:
            continue
        case = _case(w)
        g = case.get("grade") or w.get("grade")
        if metric == "nonfinite":
            sev, score = 0, c["nonfinite_total"]
        elif metric == "invariant":
            sev, score = 1, c.get("invariant_total", 0)
        else:
            if g not in ("unstable", "envelope", "invariant"):
                continue
            sig = (json.dumps(case.get("args"), sort_keys=True), json.dumps(case.get("index")))
            if sig in seen:
                continue
            seen.add(sig)
            sev = 2 if g in ("unstable", "invariant") else 3
            score = f(case.get("rel")) or 0.0
        out.append({"key": key, "cell": c, "metric": metric, "severity": sev, "severity_name": SEVERITY[sev],
                    "score": score, "case": case, "original": w, "klass": w.get("class", ""), "grade": g})
    return out


def _grad_findings(key, c) -> list:
    """Findings of one gradient cell: non-finite gradients (tier 0), flushed components that fail
    the profile (tier 1, with invariants), ``unstable`` (tier 2) and ``envelope`` (tier 3) components."""
    out = []
    worst = c.get("worst") or {}
    for metric in ("nonfinite", "flushed", "grade"):
        w = worst.get(metric)
        if not w:
            continue
        case = _case(w)
        g = case.get("grade") or w.get("grade")
        if metric == "nonfinite":
            sev, score = 0, (c.get("nonfinite") or {}).get(w.get("class", ""), c["nonfinite_total"])
        elif metric == "flushed":
            if g not in ("unstable", "invariant", "nonfinite"):
                continue   # a flushed component within an allowance is not a finding
            sev, score = 1, c.get("flushed", 0)
        else:
            if g not in ("unstable", "envelope"):
                continue
            sev, score = (2 if g == "unstable" else 3), f(case.get("rel")) or 0.0
        out.append({"key": key, "cell": c, "metric": "grad_" + metric, "severity": sev,
                    "severity_name": SEVERITY[sev], "score": score, "case": case, "original": w,
                    "klass": w.get("class", ""), "grade": g})
    return out


def findings(doc) -> list:
    """Ranked findings (list of dicts), identical ones across variants of one backend merged."""
    raw = []
    for key, c in doc["cells"].items():
        if c["status"] != "ok":
            continue
        raw += _grad_findings(key, c) if is_grad(c) else _value_findings(key, c)
    merged = {}
    for r in raw:
        c, case = r["cell"], r["case"]
        if r["metric"] in ("nonfinite", "invariant", "grad_nonfinite", "grad_flushed"):
            # one behaviour of one backend: merged over its variants and dtypes
            sig = (c["quantity"], c["backend"], c["device"], r["metric"], r["klass"], case.get("arg"))
        else:
            sig = (c["quantity"], c["backend"], c["dtype"], c["device"], r["metric"] in ("grad_grade",),
                   json.dumps(case.get("args"), sort_keys=True), json.dumps(case.get("computed")))
        r["by_search"] = bool((c.get("search_hits") or {}).get(r["klass"])) \
            if r["metric"] in ("nonfinite", "invariant", "grad_nonfinite") else \
            str(r["original"].get("source", "")).startswith("search")
        if sig in merged:
            m = merged[sig]
            if c["variant"] not in m["variants"]:
                m["variants"].append(c["variant"])
            if c["dtype"] not in m["dtypes"]:
                m["dtypes"].append(c["dtype"])
            m["calls"].append(c.get("call", ""))
            m["score"] = max(m["score"], r["score"])
            m["by_search"] = m["by_search"] or r["by_search"]
            better = (case.get("reproduced") and not m["case"].get("reproduced")) or \
                (case.get("reproduced") == m["case"].get("reproduced") and c["dtype"] == "float32"
                 and m["cell"]["dtype"] != "float32")
            if better:
                m["case"], m["cell"], m["original"], m["grade"] = case, c, r["original"], r["grade"]
            continue
        r["variants"] = [c["variant"]]
        r["dtypes"] = [c["dtype"]]
        r["calls"] = [c.get("call", "")]
        merged[sig] = r
    for m in merged.values():
        m["dtypes"] = [d for d in DTYPE_ORDER if d in m["dtypes"]]
        m["kappa"] = f(m["case"].get("kappa"))
        m["rel"] = f(m["case"].get("rel"))
        m["best"] = best_other(m["case"])
    out = sorted(merged.values(), key=lambda r: (r["severity"], -float(r["score"] or 0),
                                                 r["cell"]["quantity"], r["cell"]["backend"], r["cell"]["dtype"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i
        r["title"] = title(r)
    return out


def well_conditioned(r) -> bool:
    k = r.get("kappa")
    return k is not None and not math.isnan(k) and k <= WELL_CONDITIONED


def ten_worst(found, n=TOP) -> list:
    """The ``n`` worst findings by relative error at well-conditioned inputs (kappa <=
    WELL_CONDITIONED) whose grade is beyond the conditioning (envelope, unstable, invariant)."""
    cand = [r for r in found if r["grade"] in ("envelope", "unstable", "invariant") and well_conditioned(r)
            and r.get("rel") is not None and not math.isnan(r["rel"])]
    cand.sort(key=lambda r: (-r["rel"], r["severity"], r["rank"]))
    return cand[:n]


NONFINITE_TEXT = {
    "overflow": "+-inf where the exact value is finite (overflow)",
    "log_of_underflow": "+-inf where the exact value is finite (log of a value that underflowed to 0)",
    "nan_inf_arith": "NaN where the exact value is finite (inf - inf or 0 * inf)",
    "nan": "NaN where the exact value is finite",
    "finite_expected_nonfinite": "a finite number where the exact value is +-inf or NaN",
    "wrong_infinity": "the wrong infinity (or NaN where an infinity is expected)",
}


def title(r) -> str:
    c, case = r["cell"], r["case"]
    who = f"{c['backend']} {'/'.join(r['variants'])}"
    dts = ", ".join(r.get("dtypes") or [c["dtype"]])
    m = r["metric"][5:] if r["metric"].startswith("grad_") else r["metric"]
    if m == "nonfinite":
        what = NONFINITE_TEXT.get(r["klass"], r["klass"])
    elif m == "invariant":
        what = f"invariant broken: {r['klass']}"
    elif m == "flushed":
        what = f"gradient component flushed to 0 where the exact derivative is a nonzero {c['dtype']} number"
    else:
        what = (f"{r['grade']}: {fmt_num(case.get('ulp'))} ULP, relative error {fmt_pct(case.get('rel'))}, "
                f"kappa {fmt_num(case.get('kappa'))}")
    if r["metric"].startswith("grad_"):
        return f"{c['quantity']} gradient d/d{case.get('arg')} [{dts}] {who}: {what}"
    return f"{c['quantity']} [{dts}] {who}: {what}"


def describe_input(case) -> str:
    """A one-line description of a (shrunk) input: shapes and a few values."""
    args = case.get("args")
    if not args:
        return ", ".join(f"shape {tuple(s)}" for s in case.get("shapes", []))
    parts = []
    for a in args:
        if isinstance(a, dict):
            flat = _flatten(a["values"])
            vals = ", ".join(fmt_exact(v) for v in flat[:6]) + (", ..." if len(flat) > 6 else "")
            parts.append(f"{a['dtype']}{tuple(a['shape'])} [{vals}]")
        else:
            parts.append(fmt_exact(a))
    return "; ".join(parts)


def _flatten(v):
    if isinstance(v, list):
        out = []
        for x in v:
            out += _flatten(x)
        return out
    return [v]


def quantity_rows(doc, quantity, kind="value") -> list:
    rows = [c for c in doc["cells"].values() if c["quantity"] == quantity and (c.get("kind") or "value") == kind]
    order = {b: i for i, b in enumerate(backends_of(doc))}
    rows.sort(key=lambda c: (order.get(c["backend"], 99), c["variant"],
                             DTYPE_ORDER.index(c["dtype"]) if c["dtype"] in DTYPE_ORDER else 9, c["device"]))
    return rows


def panel_rows(doc) -> dict:
    p = (doc.get("panels") or {}).get("softmax_precision")
    if not p or "results" not in p:
        return {}
    table = {}
    for r in p["results"]:
        k = (r["backend"], r["variant"], r["dtype"], r["scale"])
        table.setdefault(k, {})[r["n"]] = r
    return {"panel": p, "table": table}


# ---------------------------------------------------------------- compiled and mixed precision

SAFE_K = 2.0   # "safe to leave to autocast": passes the judge and at most SAFE_K x eager's error


def _is_compiled(variant) -> bool:
    return "compiled" in str(variant)


def _rel(c):
    return c.get("relative") or {}


def compiled_rows(doc) -> list:
    """One row per compiled cell (a cell with a ``relative`` record and a compiled variant):
    grade, verdict, ``compiled is k x less / more accurate than eager`` (the error ratio against
    the exact value, :mod:`infoaudit.judging.relative`), the compile seconds of that cell
    (``environment.compiled.per_cell``) and whether a reproducer runs both."""
    per = ((doc.get("environment") or {}).get("compiled") or {}).get("per_cell") or {}
    rows = []
    for c in doc["cells"].values():
        r = _rel(c)
        if not r or not _is_compiled(c["variant"]):
            continue
        key = f"{c['variant']}|{c['quantity']}|{c['dtype']}|{c['device']}" + ("|grad" if is_grad(c) else "")
        ratio = f(r.get("ratio"))
        rows.append({"quantity": c["quantity"], "dtype": c["dtype"], "device": c["device"], "variant": c["variant"],
                     "kind": c.get("kind") or "value", "grade": c.get("grade") or "-", "verdict": c.get("verdict") or "-",
                     "ratio": fmt_num(ratio, 3), "text": r.get("text", ""), "worse": r.get("worse", 0),
                     "better": r.get("better", 0), "elements": r.get("elements", 0),
                     "compile_s": fmt_num(per.get(key), 2) if key in per else "-",
                     "reproducer": bool(r.get("reproducer")), "code": r.get("reproducer") or "",
                     "status": c["status"], "reason": c.get("reason", "")})
    rows.sort(key=lambda x: (x["quantity"], x["kind"], DTYPE_ORDER.index(x["dtype"]) if x["dtype"] in DTYPE_ORDER
                             else 9, x["variant"]))
    return rows


def autocast_rows(doc) -> list:
    """"Which losses are safe to leave to autocast": one row per (quantity, autocast or upcast
    cell) with the dtype it returned and computed in (the cell's probed note), its grade and
    verdict at the group's dtype, its error ratio to the eager op on the same inputs, and
    ``safe``: it passes the judge and its error is at most ``SAFE_K`` times eager's."""
    rows = []
    for c in doc["cells"].values():
        v = str(c["variant"])
        if is_grad(c) or not (v.startswith("autocast") or v in ("upcast", "dtype_float32")):
            continue
        r = _rel(c)
        ratio = f(r.get("ratio")) if r else None
        ok = c["status"] == "ok" and c.get("verdict") == "pass" and ratio is not None and ratio <= SAFE_K
        note = str(c.get("note") or "")
        rows.append({"quantity": c["quantity"], "dtype": c["dtype"], "device": c["device"], "variant": v,
                     "how": note.split(" (probed)")[0] if "autocast(" in note else note,
                     "returned": next((n for n in c.get("notes", []) if n.startswith("returned")), ""),
                     "grade": c.get("grade") or "-", "verdict": c.get("verdict") or "-",
                     "ratio": fmt_num(ratio, 3) if ratio is not None else "-", "text": r.get("text", ""),
                     "safe": "yes" if ok else ("-" if c["status"] != "ok" else "no"),
                     "status": c["status"], "reason": c.get("reason", "")})
    rows.sort(key=lambda x: (x["quantity"], DTYPE_ORDER.index(x["dtype"]) if x["dtype"] in DTYPE_ORDER else 9,
                             x["variant"]))
    return rows


__all__ = ["summary", "grade_matrix", "matrix_title", "grades_text", "matrix", "columns", "column_label", "findings",
           "ten_worst", "best_other", "best_text", "quantity_rows", "panel_rows", "fmt_num", "fmt_pct", "fmt_ulp",
           "fmt_exact",
           "ulp_class", "describe_input", "is_grad", "judge_profile", "SEVERITY", "GRADE_WORD", "GRADE_MEANING",
           "GRADE_CLASS", "GRADE_EMOJI", "WELL_CONDITIONED", "TOP", "compiled_rows", "autocast_rows", "SAFE_K"]
