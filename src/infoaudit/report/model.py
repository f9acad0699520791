"""What the report shows, derived from a results document (JSON) only.

* :func:`matrix` -- quantity x (backend, dtype) summary: worst max ULP over variants, non-finite flag;
* :func:`findings` -- ranked by practical severity (DESIGN): non-finite mismatches first, then
  invariant violations, then ULP errors on well-conditioned outputs (reference amplification
  scale/|value| <= ``WELL_CONDITIONED``), then the rest (errors the problem's cancellation forces);
  identical findings of several variants of one backend are merged;
* :func:`quantity_rows`, :func:`panel_rows` -- the per-quantity and FP16/BF16/FP32 softmax tables.
"""
from __future__ import annotations

import json
import math

ULP_FINDING = 16.0        # a cell's worst ULP error is a finding from this size on
SCALED_FINDING = 16.0     # ... and its error relative to the problem's scale (in units u) from this size on
WELL_CONDITIONED = 64.0   # amplification bound (reference scale / |value|) shown beside each figure
SEVERITY = ("non-finite", "invariant", "accuracy (large against the problem's scale)",
            "accuracy (cancellation or underflow)")
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


def backends_of(doc):
    order = list(doc.get("config", {}).get("backends") or [])
    for c in doc["cells"].values():
        if c["backend"] not in order:
            order.append(c["backend"])
    return order


def quantities_of(doc):
    order = list(doc.get("config", {}).get("quantities") or [])
    for c in doc["cells"].values():
        if c["quantity"] not in order:
            order.append(c["quantity"])
    return order


def dtypes_of(doc):
    ds = {c["dtype"] for c in doc["cells"].values()}
    return [d for d in DTYPE_ORDER if d in ds]


def matrix(doc) -> dict:
    """{(quantity, backend, dtype): {max_ulp, nonfinite, invariant, status, variants, examples}}."""
    out = {}
    for c in doc["cells"].values():
        k = (c["quantity"], c["backend"], c["dtype"])
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
        ms = f(c.get("max_scaled")) or 0.0
        e["max_scaled"] = ms if e["max_scaled"] is None else max(e["max_scaled"], ms)
        e["nonfinite"] += c["nonfinite_total"]
        e["invariant"] += c.get("invariant_total", 0)
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
        if r["metric"] in ("nonfinite", "invariant"):
            # one behaviour of one backend: merged over its variants and dtypes
            sig = (c["quantity"], c["backend"], c["device"], r["metric"], r["klass"])
        else:
            sig = (c["quantity"], c["backend"], c["dtype"], c["device"], r["metric"],
                   json.dumps(case.get("args"), sort_keys=True), json.dumps(case.get("computed")))
        r["by_search"] = bool((c.get("search_hits") or {}).get(r["klass"])) if r["metric"] != "ulp" else \
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


def quantity_rows(doc, quantity) -> list:
    rows = [c for c in doc["cells"].values() if c["quantity"] == quantity]
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


__all__ = ["matrix", "findings", "quantity_rows", "panel_rows", "fmt_num", "fmt_exact", "ulp_class",
           "describe_input", "ULP_FINDING", "SEVERITY"]
