"""Markdown and HTML renderings of a results document (HTML through a Jinja2 template, autoescaped)."""
from __future__ import annotations

import os

from . import model as M

MD_FINDINGS = 40  # findings listed in full in the Markdown (all of them are in the HTML and the JSON)
MD_SNIPPET_MAX = 4000  # longer reproducers (long inputs) are shown in the HTML only


def context(doc, plots: dict) -> dict:
    """Everything both renderings show, as plain data."""
    cfg = doc.get("config", {})
    mat = M.matrix(doc)
    qs, bs, ds = M.quantities_of(doc), M.backends_of(doc), M.dtypes_of(doc)
    cols = M.columns(doc)
    matrix_rows = []
    for q in qs:
        cells = []
        for b, d, k in cols:
            e = mat.get((q, b, d, k))
            if not e or e["status"] != "ok":
                reason = "; ".join(e["reasons"]) if e else "not run"
                cells.append({"text": "n/a", "cls": "na", "nf": False, "title": reason})
                continue
            what = "flushed gradient components" if k == "grad" else "invariant violations"
            cells.append({"text": M.fmt_num(e["max_ulp"], 2), "cls": M.ulp_class(e["max_ulp"]),
                          "stext": M.fmt_num(e["max_scaled"], 2), "scls": M.ulp_class(e["max_scaled"]),
                          "nf": e["nonfinite"] > 0, "inv": e["invariant"] > 0, "grad": k == "grad",
                          "title": f"{e['variants']} variant(s), {e['examples']} inputs judged, "
                                   f"{e['nonfinite']} non-finite mismatches, {e['invariant']} {what}"})
        matrix_rows.append({"quantity": q, "cells": cells})
    fl = M.findings(doc)
    findings = []
    for r in fl:
        c, case = r["cell"], r["case"]
        findings.append({
            "rank": r["rank"], "title": r["title"], "severity": r["severity_name"], "quantity": c["quantity"],
            "dtypes": ", ".join(r["dtypes"]), "by_search": r["by_search"], "sev_index": r["severity"],
            "backend": c["backend"], "variants": ", ".join(r["variants"]), "dtype": c["dtype"],
            "device": c["device"], "calls": sorted(set(x for x in r["calls"] if x)),
            "klass": r["klass"], "counts": _counts(c, r["metric"]),
            "input": M.describe_input(case), "source": r["original"].get("source", ""),
            "computed": M.fmt_exact(case.get("computed")), "expected": M.fmt_exact(case.get("expected")),
            "exact_hi": M.fmt_exact(case.get("exact_hi")), "exact_lo": M.fmt_exact(case.get("exact_lo")),
            "ulp": M.fmt_num(case.get("ulp")), "rel": M.fmt_num(case.get("rel")), "abs": M.fmt_num(case.get("abs")),
            "scaled": M.fmt_num(case.get("scaled")),
            "amplification": M.fmt_num(r["amplification"]) if r["amplification"] is not None else "-",
            "is_grad": M.is_grad(c), "arg": case.get("arg") or "", "cae": M.fmt_num(case.get("cae")),
            "kappa": M.fmt_num(case.get("kappa")), "how": c.get("how", ""),
            "cotangent": M.describe_input({"args": [case["cotangent"]]}) if case.get("cotangent") else "",
            "snippet": _snippet_text(c, case), "snippet_kind": case.get("snippet_kind", ""),
            "reproduced": bool(case.get("reproduced")),
            "shrunk": case is not r["original"], "shrink_steps": r["original"].get("shrink_steps", 0),
        })
    per_q = []
    for q in qs:
        rows = []
        for c in M.quantity_rows(doc, q):
            rows.append({"backend": c["backend"], "variant": c["variant"], "dtype": c["dtype"], "device": c["device"],
                         "call": c.get("call", ""), "status": c["status"], "reason": c.get("reason", ""),
                         "examples": c["examples"], "max_ulp": M.fmt_num(c["max_ulp"]),
                         "p99_ulp": M.fmt_num(c["p99_ulp"]), "max_rel": M.fmt_num(c["max_rel"]),
                         "max_abs": M.fmt_num(c["max_abs"]),
                         "nonfinite": ", ".join(f"{k} {v}" for k, v in c["nonfinite"].items()) or "0",
                         "invariants": ", ".join(f"{k} {v}" for k, v in c.get("invariants", {}).items()) or "0",
                         "cls": M.ulp_class(M.f(c["max_ulp"])) if c["status"] == "ok" else "na"})
        grows = []
        for c in M.quantity_rows(doc, q, "grad"):
            ok = c["status"] == "ok"
            grows.append({"backend": c["backend"], "variant": c["variant"], "dtype": c["dtype"],
                          "device": c["device"], "how": c.get("how", ""), "status": c["status"],
                          "reason": c.get("reason", ""), "examples": c["examples"],
                          "max_ulp": M.fmt_num(c["max_ulp"]), "p99_ulp": M.fmt_num(c["p99_ulp"]),
                          "max_cae": M.fmt_num(c.get("max_cae")), "p99_cae": M.fmt_num(c.get("p99_cae")),
                          "flushed": c.get("flushed", 0), "boundary": c.get("boundary", 0),
                          "nonfinite": ", ".join(f"{k} {v}" for k, v in c["nonfinite"].items()) or "0",
                          "args": ", ".join(sorted(c.get("args") or {})) +
                                  "".join(f"; d/d{a} not taken: {why}" for a, why in (c.get("skipped_args") or {}).items()),
                          "cls": M.ulp_class(M.f(c.get("max_cae"))) if ok else "na"})
        per_q.append({"quantity": q, "rows": rows, "grad_rows": grows, "plot": plots.get(f"error_{q}")})
    panel = _panel(doc)
    errata = doc.get("seeds_errata") or {"available": False, "rows": [], "note": "not available: not recorded"}
    env = doc.get("environment") or {}
    skipped = sorted({(s[0], s[1]) for g in doc.get("groups", {}).values() for s in (g.get("skipped") or [])
                      if "not audited by" not in s[1]})
    errors = [(k, g["error"].splitlines()[0]) for k, g in doc.get("groups", {}).items() if g.get("error")]
    n_ok = sum(1 for c in doc["cells"].values() if c["status"] == "ok")
    n_grad = sum(1 for c in doc["cells"].values() if c["status"] == "ok" and M.is_grad(c))
    cond = doc.get("condition_examples")
    cond = cond if isinstance(cond, list) else []
    return {
        "columns": [M.column_label(b, d, k) for b, d, k in cols], "n_grad_cells": n_grad,
        "cae_finding": M.CAE_FINDING, "condition_examples": [
            {k: (M.fmt_num(v, 4) if isinstance(v, (int, float)) else v) for k, v in r.items()} for r in cond],
        "profile": cfg.get("profile"), "seed": cfg.get("seed"), "status": doc.get("status"),
        "started": doc.get("started"), "updated": doc.get("updated"), "elapsed": doc.get("elapsed_s"),
        "n_cells": len(doc["cells"]), "n_ok": n_ok,
        "n_examples": sum(g.get("examples", 0) for g in doc.get("groups", {}).values()),
        "backends": bs, "dtypes": ds, "matrix": matrix_rows, "plots": plots,
        "findings": findings, "n_findings": len(findings),
        "by_severity": {s: sum(1 for x in findings if x["severity"] == s) for s in M.SEVERITY},
        "per_quantity": per_q, "panel": panel, "errata": errata, "env": env, "skipped": skipped, "errors": errors,
        "ulp_finding": M.ULP_FINDING, "scaled_finding": M.SCALED_FINDING,
    }


def _snippet_text(cell, case):
    """The reproducer the runner executed and verified (regenerated from the stored arguments)."""
    from .grad_reproducer import grad_snippet
    from .reproducer import snippet

    if case.get("snippet"):
        return case["snippet"]
    kind = case.get("snippet_kind")
    if kind not in ("native", "table") or not case.get("args"):
        return ""
    try:
        if M.is_grad(cell):
            return grad_snippet(cell, case, native=(kind == "native"))
        return snippet(cell, case, native=(kind == "native"))
    except Exception:  # noqa: BLE001
        return ""


def _counts(c, metric):
    if M.is_grad(c):
        return (f"over {c['examples']} inputs: non-finite {', '.join(f'{k}: {v}' for k, v in c['nonfinite'].items()) or 0}; "
                f"flushed {c.get('flushed', 0)}; max condition-aware error {M.fmt_num(c.get('max_cae'))}, "
                f"max {M.fmt_num(c['max_ulp'])} ULP over {c['elements']} gradient components")
    if metric == "nonfinite":
        return ", ".join(f"{k}: {v}" for k, v in c["nonfinite"].items())
    if metric == "invariant":
        return ", ".join(f"{k}: {v}" for k, v in c.get("invariants", {}).items())
    return f"max {M.fmt_num(c['max_ulp'])} ULP, p99 {M.fmt_num(c['p99_ulp'])} ULP over {c['elements']} elements"


def _panel(doc):
    pr = M.panel_rows(doc)
    if not pr:
        p = (doc.get("panels") or {}).get("softmax_precision")
        return {"available": False, "note": (p or {}).get("error", "not run")}
    p, table = pr["panel"], pr["table"]
    sizes = p["sizes"]
    rows = []
    for (b, v, d, sc), by_n in sorted(table.items(), key=lambda kv: (kv[0][3], kv[0][0], kv[0][1],
                                                                     M.DTYPE_ORDER.index(kv[0][2]))):
        rows.append({"backend": b, "variant": v, "dtype": d, "scale": sc,
                     "cells": [(M.fmt_num(by_n[n]["max_ulp"]) + (f" / {M.fmt_num(by_n[n]['mean_ulp'], 2)}")
                                if n in by_n else "-") for n in sizes],
                     "sum_err": M.fmt_num(max((M.f(by_n[n]["sum_err"]) or 0.0) for n in by_n))})
    return {"available": True, "sizes": sizes, "rows": rows, "input": p.get("input", ""),
            "rows_per_size": p.get("rows_per_size"), "unsupported": p.get("unsupported", [])}


# ---------------------------------------------------------------- Markdown


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(ctx) -> str:
    L = []
    a = L.append
    a("# infoaudit error and stability report\n")
    a(f"Profile **{ctx['profile']}**, seed {ctx['seed']}, status {ctx['status']}; {ctx['n_ok']} audited cells "
      f"(quantity x backend x variant x dtype x device) of {ctx['n_cells']}, {ctx['n_examples']} generated and "
      f"corpus inputs judged against the exact reference; started {ctx['started']}, "
      f"{ctx['elapsed'] or 0:.0f} s. Every number below comes from `results.json` in this folder; regenerate "
      "with `make report` (or `infoaudit report results.json`).\n")
    a("Errors are measured in ULPs of the audited dtype at the exact value (0.5 = correctly rounded), and relative "
      "to the problem's scale: |y - y*| / (u max(|y*|, largest |input| of the row)) in units of the unit roundoff u "
      "(a stable algorithm stays O(n) even where the output cancels to ~0). *Amplification* is the exact "
      "reference's own bound scale/|value| at that element: large values mean the output is a cancellation "
      "(e.g. KL of nearly equal distributions), where any float algorithm loses digits.\n")
    a("## Summary matrix\n")
    if ctx["plots"].get("summary"):
        a(f"![summary matrix]({ctx['plots']['summary']})\n")
    head = "| quantity | " + " | ".join(ctx["columns"]) + " |"
    rule = "|" + "---|" * (1 + len(ctx["columns"]))
    a(head)
    a(rule)
    for r in ctx["matrix"]:
        cells = []
        for c in r["cells"]:
            t = c["text"]
            if c.get("nf"):
                t = f"**NF** {t}"
            elif c.get("inv"):
                t = f"*{'fl' if c.get('grad') else 'inv'}* {t}"
            cells.append(t)
        a(f"| {r['quantity']} | " + " | ".join(cells) + " |")
    a("\nCells: worst max ULP error over the backend's variants; **NF** = a non-finite mismatch was found, "
      "*inv* = an invariant was violated; n/a = not supported (reason in the per-quantity tables). Columns "
      "named *grad* hold the gradients (the VJP through the framework's autodiff, every float argument, against "
      "the exact derivative; *fl* = a component was flushed to 0). Max ULP is "
      "dominated by outputs that cancel to ~0 or are subnormal (ULP there is tiny); the second matrix shows the "
      "error relative to the problem's scale, which separates what the algorithm adds.\n")
    a("### Error relative to the problem's scale\n")
    if ctx["plots"].get("summary_scaled"):
        a(f"![summary matrix, scaled error]({ctx['plots']['summary_scaled']})\n")
    a(head)
    a(rule)
    for r in ctx["matrix"]:
        a(f"| {r['quantity']} | " + " | ".join(c.get("stext", c["text"]) for c in r["cells"]) + " |")
    a("\nCells: max |y - y*| / (u max(|y*|, largest |input|)) in units of the dtype's unit roundoff u, worst "
      "variant; a stable algorithm stays near 1 (up to ~n for long reductions). *grad* columns: the worst "
      "condition-aware error of the gradient (next section).\n")
    _md_condition(a, ctx)
    a("## Findings, ranked by severity\n")
    bs = ", ".join(f"{v} {k}" for k, v in ctx["by_severity"].items())
    a(f"{ctx['n_findings']} findings ({bs}). Non-finite mismatches first, then invariant violations "
      "(and flushed or boundary gradient components), then errors "
      f"that are large against the problem's scale (|y - y*| >= {ctx['scaled_finding']:g} u max(|y*|, largest |input|); "
      f"gradients: condition-aware error >= {ctx['cae_finding']:g}: what the algorithm adds), then the rest: ULP errors "
      f">= {ctx['ulp_finding']:g} on outputs that cancel to near 0 or underflow, which any float algorithm loses "
      "(absolute error and amplification shown). Non-finite and invariant findings are merged over a backend's "
      "variants and dtypes. Each input was found by the search or the corpus, shrunk to a minimal reproducer, and "
      "its snippet was executed to check that it reproduces the value.\n")
    for fnd in ctx["findings"][:MD_FINDINGS]:
        a(f"### {fnd['rank']}. {_md(fnd['title'])}\n")
        a(f"- severity: {fnd['severity']}; {fnd['counts']}")
        if fnd["calls"]:
            a("- call: " + "; ".join(f"`{c}`" for c in fnd["calls"]))
        a(f"- input ({'shrunk' if fnd['shrunk'] else 'as found'}, from {_md(fnd['source'])}"
          f"{'; the hypothesis search hit this too' if fnd['by_search'] else ''}): `{fnd['input']}`")
        if "," in fnd["dtypes"]:
            a(f"- seen in {fnd['dtypes']}; shown for {fnd['dtype']}")
        if fnd["is_grad"]:
            a(f"- cotangent: `{fnd['cotangent']}`; gradient through `{fnd['how']}`")
            a(f"- computed d/d{fnd['arg']} = {fnd['computed']}, exact (rounded to {fnd['dtype']}) {fnd['expected']}; "
              f"error {fnd['ulp']} ULP, relative {fnd['rel']}, absolute {fnd['abs']}; condition number kappa "
              f"{fnd['kappa']}, condition-aware error {fnd['cae']}")
        else:
            a(f"- computed {fnd['computed']}, exact (rounded to {fnd['dtype']}) {fnd['expected']}; "
              f"error {fnd['ulp']} ULP, relative {fnd['rel']}, absolute {fnd['abs']}, {fnd['scaled']} u of the "
              f"problem's scale; amplification {fnd['amplification']}")
        if fnd["snippet"] and len(fnd["snippet"]) > MD_SNIPPET_MAX:
            a(f"- reproducer ({fnd['snippet_kind']}, {'verified' if fnd['reproduced'] else 'NOT verified'}): "
              f"{len(fnd['snippet'])} characters (long input), in report.html\n")
        elif fnd["snippet"]:
            a(f"- reproducer ({fnd['snippet_kind']}, {'verified' if fnd['reproduced'] else 'NOT verified'}):\n")
            a("```python\n" + fnd["snippet"].rstrip() + "\n```\n")
        else:
            a("")
    if ctx["n_findings"] > MD_FINDINGS:
        a(f"... {ctx['n_findings'] - MD_FINDINGS} more findings in `report.html` and `results.json`.\n")
    a("## FP16 vs BF16 vs FP32 softmax\n")
    p = ctx["panel"]
    if p["available"]:
        a(f"{p['input']}; {p['rows_per_size']} rows per size. Cells: max / mean ULP error in the dtype.\n")
        if ctx["plots"].get("softmax_precision"):
            a(f"![softmax precision]({ctx['plots']['softmax_precision']})\n")
        a("| backend | variant | dtype | scale | " + " | ".join(f"n={n}" for n in p["sizes"]) + " | max abs(sum - 1) |")
        a("|" + "---|" * (5 + len(p["sizes"])))
        for r in p["rows"]:
            a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | {r['scale']:g} | " + " | ".join(r["cells"])
              + f" | {r['sum_err']} |")
        a("")
    else:
        a(f"not available: {p['note']}\n")
    a("## Per quantity\n")
    for pq in ctx["per_quantity"]:
        a(f"### {pq['quantity']}\n")
        if pq["plot"]:
            a(f"![{pq['quantity']}]({pq['plot']})\n")
        a("| backend | variant | dtype | inputs | max ULP | p99 ULP | max rel | max abs | non-finite | invariants |")
        a("|---|---|---|---|---|---|---|---|---|---|")
        for r in pq["rows"]:
            if r["status"] != "ok":
                a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | - | {_md(r['status'])}: {_md(r['reason'])[:120]} "
                  "| | | | | |")
                continue
            a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | {r['examples']} | {r['max_ulp']} | {r['p99_ulp']} | "
              f"{r['max_rel']} | {r['max_abs']} | {_md(r['nonfinite'])} | {_md(r['invariants'])} |")
        a("")
        if pq["grad_rows"]:
            a("Gradients (VJP through autodiff against the exact derivative):\n")
            a("| backend | variant | dtype | autodiff | inputs | max ULP | p99 ULP | max cae | p99 cae | flushed | "
              "boundary | non-finite | arguments |")
            a("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in pq["grad_rows"]:
                if r["status"] != "ok":
                    a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | - | - | {_md(r['status'])}: "
                      f"{_md(r['reason'])[:120]} | | | | | | | |")
                    continue
                a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | {_md(r['how'])} | {r['examples']} | "
                  f"{r['max_ulp']} | {r['p99_ulp']} | {r['max_cae']} | {r['p99_cae']} | {r['flushed']} | "
                  f"{r['boundary']} | {_md(r['nonfinite'])} | {_md(r['args'])} |")
            a("")
    a("## The seeds' worked examples\n")
    e = ctx["errata"]
    if e.get("available") and e.get("rows"):
        cols = [c for c in ("claim", "source", "printed", "exact", "verdict", "note") if any(c in r for r in e["rows"])]
        a("| " + " | ".join(cols) + " |")
        a("|" + "---|" * len(cols))
        for r in e["rows"]:
            a("| " + " | ".join(_md(r.get(c, "")) for c in cols) + " |")
        a("")
    else:
        a(f"{e.get('note') or 'not available'}\n")
    a("## Environment\n")
    env = ctx["env"]
    for k in ("infoaudit", "python", "platform", "cpu", "cores"):
        if k in env:
            a(f"- {k}: {_md(env[k])}")
    if env.get("packages"):
        a("- packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()))
    for b in env.get("backends", []) or []:
        if b.get("available"):
            a(f"- backend {b['backend']}: {_md(b.get('version', ''))}, devices {', '.join(b.get('devices', []))}"
              + ("; " + "; ".join(_md(s) for s in b.get("skipped", [])) if b.get("skipped") else ""))
        else:
            a(f"- backend {b['backend']}: not available ({_md(b.get('reason', ''))})")
    if ctx["skipped"]:
        a("\nSkipped cells:\n")
        for b, why in ctx["skipped"]:
            a(f"- {b}: {_md(why)}")
    if ctx["errors"]:
        a("\nGroups that failed:\n")
        for k, why in ctx["errors"]:
            a(f"- {k}: {_md(why)}")
    return "\n".join(L) + "\n"


def _md_condition(a, ctx):
    a("## Gradients and the condition-aware error\n")
    a(f"{ctx['n_grad_cells']} gradient cells: every float argument's gradient of every torch and JAX op, taken "
      "with the framework's autodiff (torch.autograd.grad, jax.vjp under jax.jit) with a fixed cotangent, is "
      "compared with the exact vector-Jacobian product (closed forms evaluated at high precision, correctly "
      "rounded). Besides ULP and relative error, each component gets a componentwise relative condition number "
      "kappa = N / |g*|, N = sum_j |dg/dx_j| |x_j| (from the exact second derivatives), and the *condition-aware "
      "error* cae = |g - g*| / (u (N + |g*|)): perturbing every input by a relative u moves g* by up to about "
      "u N, so any algorithm working in the dtype may be that wrong. cae of order 1 (a modest multiple for long "
      "sums) is the conditioning of the problem; a large cae is error the algorithm adds. Gradient findings: "
      "non-finite gradients where the exact derivative is finite, components flushed to 0 where the exact "
      "derivative is a nonzero number of the dtype, finite values where it is infinite (a domain boundary), and "
      f"cae >= {ctx['cae_finding']:g}.\n")
    ex = ctx["condition_examples"]
    if ex:
        a("Worked example (computed for this report):\n")
        a("| example | algorithm | computed | exact | ULP | relative | N | kappa | cae | verdict |")
        a("|---|---|---|---|---|---|---|---|---|---|")
        for r in ex:
            a(f"| {_md(r['name'])} | `{_md(r['algorithm'])}` | {r['computed']} | {r['exact']} | {r['ulp']} | "
              f"{r['rel']} | {r['sensitivity']} | {r['kappa']} | {r['cae']} | {r['verdict']} |")
        a("\nThe log_softmax error of hundreds of ULPs is forced: y_i = -log 2, dy_i/dz_j = delta_ij - 1/2, so "
          "N = 1000 and kappa = 1000 / log 2; the max-shifted algorithm's only error is the rounding of "
          "logsumexp, and cae < 1. The softplus error is the algorithm's: 1 + exp(-20) rounds to 1 in float32 "
          "and the result is 0 (relative error 1) while kappa is only 20; log1p(exp(x)) is correct.\n")


# ---------------------------------------------------------------- HTML


def html(ctx) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**ctx)


__all__ = ["context", "markdown", "html"]
