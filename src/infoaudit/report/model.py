"""What the report shows, derived from a results document (JSON) only.

* :func:`matrix` -- quantity x (backend, dtype, kind) summary: worst max ULP over variants (and, for
  gradient cells, the worst condition-aware error as the second figure), non-finite flag;
* :func:`columns` -- the matrix columns: forward values of every backend, then the gradients of the
  backends with autodiff;
* :func:`findings` -- ranked by practical severity (DESIGN): non-finite mismatches first, then
  invariant violations, then ULP errors on well-conditioned outputs (reference amplification
  scale/|value| <= ``WELL_CONDITIONED``), then the rest (errors the problem's cancellation forces);
  identical findings of several variants of one backend are merged; gradient findings (non-finite
  gradients, flushed components and boundary values, condition-aware error >= ``CAE_FINDING``) are
  ranked in the same tiers;
* :func:`quantity_rows`, :func:`panel_rows` -- the per-quantity and FP16/BF16/FP32 softmax tables.
"""
from __future__ import annotations

import json
import math

ULP_FINDING = 16.0        # a cell's worst ULP error is a finding from this size on
SCALED_FINDING = 16.0     # ... and its error relative to the problem's scale (in units u) from this size on
WELL_CONDITIONED = 64.0   # amplification bound (reference scale / |value|) shown beside each figure
CAE_FINDING = 1024.0      # a gradient's condition-aware error is a finding from this size on (10 bits lost
                          # beyond what the problem's conditioning forces)
SEVERITY = ("non-finite", "invariant, flushed or boundary gradient",
            "accuracy (large against the problem's scale or conditioning)", "accuracy (cancellation or underflow)")
KINDS = ("value", "grad")
DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")


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


def fmt_exact(x) -> str:
    x = f(x)
    if x is None:
        return "-"
    if math.isnan(x) or math.isinf(x):
        return fmt_num(x)
    return repr(x)


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


def matrix(doc) -> dict:
    """{(quantity, backend, dtype, kind): {max_ulp, max_scaled, nonfinite, invariant, status, variants,
    examples}}; for gradient cells ``max_scaled`` is the worst condition-aware error and
    ``invariant`` counts flushed components."""
    out = {}
    for c in doc["cells"].values():
        kind = c.get("kind") or "value"
        k = (c["quantity"], c["backend"], c["dtype"], kind)
        e = out.setdefault(k, {"max_ulp": None, "max_scaled": None, "nonfinite": 0, "invariant": 0,
                               "status": "unsupported",
                               "variants": 0, "examples": 0, "reasons": []})
        if c["status"] != "ok":
            e["reasons"].append(f"{c['variant']}: {c.get('reason') or c['status']}")
            continue
        e["status"] = "ok"
        e["variants"] += 1
        e["examples"] += c["examples"]
        mu = f(c["max_ulp"])
        e["max_ulp"] = mu if e["max_ulp"] is None else max(e["max_ulp"], mu)
        ms = f(c.get("max_cae") if kind == "grad" else c.get("max_scaled")) or 0.0
        e["max_scaled"] = ms if e["max_scaled"] is None else max(e["max_scaled"], ms)
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


def _case(w):
    return (w or {}).get("shrunk") or w


def findings(doc) -> list:
    """Ranked findings (list of dicts), identical ones across variants of one backend merged."""
    raw = []
    for key, c in doc["cells"].items():
        if c["status"] != "ok":
            continue
        if is_grad(c):
            raw += _grad_findings(key, c)
            continue
        big_scaled = (f(c.get("max_scaled")) or 0.0) >= SCALED_FINDING
        for metric in ("nonfinite", "invariant", "scaled", "ulp"):
            w = (c.get("worst") or {}).get(metric)
            if not w:
                continue
            if metric == "scaled" and not big_scaled:
                continue
            if metric == "ulp" and (f(c["max_ulp"]) < ULP_FINDING or big_scaled):
                continue
            case = _case(w)
            amp = f(case.get("amplification"))
            if metric == "nonfinite":
                sev, score = 0, c["nonfinite_total"]
            elif metric == "invariant":
                sev, score = 1, c.get("invariant_total", 0)
            elif metric == "scaled":
                sev, score = 2, f(case.get("scaled")) or f(w.get("scaled")) or 0.0
            else:
                sev, score = 3, f(case.get("ulp")) or f(w.get("ulp")) or 0.0
            raw.append({"key": key, "cell": c, "metric": metric, "severity": sev, "severity_name": SEVERITY[sev],
                        "score": score, "case": case, "original": w, "klass": w.get("class", ""),
                        "amplification": amp})
    merged = {}
    for r in raw:
        c, case = r["cell"], r["case"]
        if r["metric"] in ("nonfinite", "invariant", "grad_nonfinite", "grad_flushed"):
            # one behaviour of one backend: merged over its variants and dtypes
            sig = (c["quantity"], c["backend"], c["device"], r["metric"], r["klass"], case.get("arg"))
        else:
            sig = (c["quantity"], c["backend"], c["dtype"], c["device"], r["metric"],
                   json.dumps(case.get("args"), sort_keys=True), json.dumps(case.get("computed")))
        r["by_search"] = bool((c.get("search_hits") or {}).get(r["klass"])) \
            if r["metric"] not in ("ulp", "scaled", "grad_cae", "grad_ulp") else \
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
                m["case"], m["cell"], m["original"] = case, c, r["original"]
            continue
        r["variants"] = [c["variant"]]
        r["dtypes"] = [c["dtype"]]
        r["calls"] = [c.get("call", "")]
        merged[sig] = r
    for m in merged.values():
        m["dtypes"] = [d for d in DTYPE_ORDER if d in m["dtypes"]]
    out = sorted(merged.values(), key=lambda r: (r["severity"], -float(r["score"] or 0),
                                                 r["cell"]["quantity"], r["cell"]["backend"], r["cell"]["dtype"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i
        r["title"] = title(r)
    return out


GRAD_BOUNDARY = "finite_expected_nonfinite"


def _grad_findings(key, c) -> list:
    """Findings of one gradient cell: non-finite gradients (tier 0), flushed components and finite
    values where the exact derivative is infinite (tier 1), condition-aware error >= CAE_FINDING
    (tier 2), and ULP errors >= ULP_FINDING where no condition was computed (tier 3)."""
    out = []
    for metric, w in (c.get("worst") or {}).items():
        if not w:
            continue
        case = _case(w)
        klass = w.get("class", "")
        if metric == "nonfinite":
            sev = 1 if klass == GRAD_BOUNDARY else 0
            score = c["nonfinite"].get(klass, c["nonfinite_total"])
        elif metric == "flushed":
            sev, score = 1, c.get("flushed", 0)
        elif metric == "cae":
            score = f(case.get("cae")) or f(w.get("value")) or 0.0
            if score < CAE_FINDING:
                continue
            sev = 2
        else:
            # ULP only where no condition was computed (long units) and the exact component is nonzero
            if f(case.get("ulp")) is None or f(case.get("ulp")) < ULP_FINDING or f(case.get("cae")) is not None \
                    or case.get("kappa") is not None or not f(case.get("expected")):
                continue
            sev, score = 3, f(case.get("ulp"))
        out.append({"key": key, "cell": c, "metric": "grad_" + metric, "severity": sev,
                    "severity_name": SEVERITY[sev], "score": score, "case": case, "original": w, "klass": klass,
                    "amplification": f(case.get("kappa"))})
    return out


GRAD_TEXT = {
    "flushed": "gradient component flushed to 0 where the exact derivative is a nonzero {dtype} number",
    GRAD_BOUNDARY: "finite gradient where the exact derivative is infinite (domain boundary)",
}

NONFINITE_TEXT = {
    "overflow": "+-inf where the exact value is finite (overflow)",
    "log_of_underflow": "+-inf where the exact value is finite (log of a value that underflowed to 0)",
    "nan_inf_arith": "NaN where the exact value is finite (inf - inf or 0 * inf)",
    "nan": "NaN where the exact value is finite",
    "finite_expected_nonfinite": "a finite number where the exact value is +-inf or NaN",
    "wrong_infinity": "the wrong infinity (or NaN where an infinity is expected)",
}


def title(r) -> str:
    c = r["cell"]
    who = f"{c['backend']} {'/'.join(r['variants'])}"
    if r["metric"].startswith("grad_"):
        m, case = r["metric"][5:], r["case"]
        if m == "nonfinite":
            what = GRAD_TEXT.get(r["klass"]) or NONFINITE_TEXT.get(r["klass"], r["klass"])
        elif m == "flushed":
            what = GRAD_TEXT["flushed"].format(dtype=c["dtype"])
        elif m == "cae":
            what = (f"condition-aware error {fmt_num(case.get('cae'))} ({fmt_num(case.get('ulp'))} ULP, "
                    f"kappa {fmt_num(case.get('kappa'))})")
        else:
            what = f"{fmt_num(case.get('ulp'))} ULP error"
        return f"{c['quantity']} gradient d/d{case.get('arg')} [{', '.join(r.get('dtypes') or [c['dtype']])}] {who}: {what}"
    if r["metric"] == "nonfinite":
        what = NONFINITE_TEXT.get(r["klass"], r["klass"])
    elif r["metric"] == "invariant":
        what = f"invariant violated: {r['klass']}"
    elif r["metric"] == "scaled":
        what = (f"error {fmt_num(r['case'].get('scaled'))} u relative to the problem's scale "
                f"({fmt_num(r['case'].get('ulp'))} ULP)")
    else:
        what = f"{fmt_num(r['case'].get('ulp'))} ULP error"
        if r["amplification"] is not None:
            what += f" (amplification {fmt_num(r['amplification'])})"
    return f"{c['quantity']} [{', '.join(r.get('dtypes') or [c['dtype']])}] {who}: {what}"


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


__all__ = ["matrix", "columns", "column_label", "findings", "quantity_rows", "panel_rows", "fmt_num", "fmt_exact",
           "ulp_class", "describe_input", "is_grad", "ULP_FINDING", "CAE_FINDING", "SEVERITY"]
