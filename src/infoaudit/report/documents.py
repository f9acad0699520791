"""Markdown and HTML renderings of a results document (HTML through a Jinja2 template, autoescaped)."""
from __future__ import annotations

import os

from . import model as M

MD_FINDINGS = 40  # findings listed in full in the Markdown (all of them are in the HTML and the JSON)
MD_SNIPPET_MAX = 4000  # longer reproducers (long inputs) are shown in the HTML only


def _grade_cell(e):
    """A grade-matrix cell: word, colour class, verdict and the hover text with the numbers."""
    if not e or e["status"] != "ok":
        reason = "; ".join(e["reasons"]) if e else "not run"
        return {"text": "n/a", "cls": "na", "title": reason, "grade": None, "verdict": None, "emoji": ""}
    g = e["grade"]
    if g is None:
        return {"text": "ungraded", "cls": "na", "title": M.matrix_title(e), "grade": None, "verdict": None,
                "emoji": ""}
    return {"text": M.GRADE_WORD[g], "cls": M.GRADE_CLASS[g], "title": M.matrix_title(e), "grade": g,
            "verdict": e["verdict"], "emoji": M.GRADE_EMOJI[g]}


def _finding_dict(r):
    c, case = r["cell"], r["case"]
    grad = f" gradient d/d{case.get('arg')}" if M.is_grad(c) else ""
    return {
        "rank": r["rank"], "title": r["title"], "severity": r["severity_name"], "quantity": c["quantity"],
        "label": f"{c['quantity']}{grad} [{', '.join(r['dtypes'])}] {c['backend']} {', '.join(r['variants'])}",
        "dtypes": ", ".join(r["dtypes"]), "by_search": r["by_search"], "sev_index": r["severity"],
        "backend": c["backend"], "variants": ", ".join(r["variants"]), "dtype": c["dtype"],
        "device": c["device"], "calls": sorted(set(x for x in r["calls"] if x)),
        "klass": r["klass"], "counts": _counts(c, r["metric"]), "grade": r["grade"] or "",
        "grade_cls": M.GRADE_CLASS.get(r["grade"], "na"), "why": case.get("why") or "",
        "verdict": c.get("verdict") or "", "cell_why": c.get("why") or "",
        "input": M.describe_input(case), "source": r["original"].get("source", ""),
        "computed": M.fmt_exact(case.get("computed")), "expected": M.fmt_exact(case.get("expected")),
        "exact_hi": M.fmt_exact(case.get("exact_hi")), "exact_lo": M.fmt_exact(case.get("exact_lo")),
        "ulp": M.fmt_ulp(case.get("ulp")), "rel": M.fmt_num(case.get("rel")), "rel_pct": M.fmt_pct(case.get("rel")),
        "abs": M.fmt_num(case.get("abs")), "kappa": M.fmt_num(case.get("kappa")),
        "allow_conditioned": M.fmt_num(case.get("allow_conditioned"), 2),
        "allow_envelope": M.fmt_num(case.get("allow_envelope"), 2),
        "best": M.best_text(r["best"]), "best_grade_cls": M.GRADE_CLASS.get((r["best"] or {}).get("grade"), "na"),
        "is_grad": M.is_grad(c), "arg": case.get("arg") or "", "cae": M.fmt_num(case.get("cae")),
        "how": c.get("how", ""),
        "cotangent": M.describe_input({"args": [case["cotangent"]]}) if case.get("cotangent") else "",
        "snippet": snippet_text(c, case), "snippet_kind": case.get("snippet_kind", ""),
        "reproduced": bool(case.get("reproduced")),
        "shrunk": case is not r["original"], "shrink_steps": r["original"].get("shrink_steps", 0),
    }


def context(doc, plots: dict) -> dict:
    """Everything both renderings show, as plain data."""
    cfg = doc.get("config", {})
    qs, bs, ds = M.quantities_of(doc), M.backends_of(doc), M.dtypes_of(doc)
    cols = M.columns(doc)
    gm = M.grade_matrix(doc)
    mat = M.matrix(doc)
    grade_rows, ulp_rows = [], []
    for q in qs:
        grade_rows.append({"quantity": q, "cells": [_grade_cell(gm.get((q, b, d, k))) for b, d, k in cols]})
        cells = []
        for b, d, k in cols:
            e = mat.get((q, b, d, k))
            if not e or e["status"] != "ok":
                reason = "; ".join(e["reasons"]) if e else "not run"
                cells.append({"text": "n/a", "cls": "na", "nf": False, "title": reason})
                continue
            what = "flushed gradient components" if k == "grad" else "invariant findings"
            cells.append({"text": M.fmt_num(e["max_ulp"], 2), "cls": M.ulp_class(e["max_ulp"]),
                          "nf": e["nonfinite"] > 0, "inv": e["invariant"] > 0, "grad": k == "grad",
                          "title": f"{e['variants']} variant(s), {e['examples']} inputs judged, "
                                   f"{e['nonfinite']} non-finite results, {e['invariant']} {what}"})
        ulp_rows.append({"quantity": q, "cells": cells})
    fl = M.findings(doc)
    findings = [_finding_dict(r) for r in fl]
    by_rank = {x["rank"]: x for x in findings}
    top = [by_rank[r["rank"]] for r in M.ten_worst(fl)]
    per_q = []
    for q in qs:
        rows = []
        for c in M.quantity_rows(doc, q):
            ok = c["status"] == "ok"
            rows.append({"backend": c["backend"], "variant": c["variant"], "dtype": c["dtype"], "device": c["device"],
                         "call": c.get("call", ""), "status": c["status"], "reason": c.get("reason", ""),
                         "examples": c["examples"], "max_ulp": M.fmt_num(c["max_ulp"]),
                         "p99_ulp": M.fmt_num(c["p99_ulp"]), "max_rel": M.fmt_num(c["max_rel"]),
                         "max_abs": M.fmt_num(c["max_abs"]),
                         "nonfinite": ", ".join(f"{k} {v}" for k, v in c["nonfinite"].items()) or "0",
                         "invariants": ", ".join(f"{k} {v}" for k, v in c.get("invariants", {}).items()) or "0",
                         "grade": c.get("grade") or "-", "verdict": c.get("verdict") or "-",
                         "grades": M.grades_text(c.get("grades") or {}) if c.get("grades") is not None else "-",
                         "why": c.get("why") or "",
                         "grade_cls": M.GRADE_CLASS.get(c.get("grade"), "na") if ok else "na",
                         "cls": M.ulp_class(M.f(c["max_ulp"])) if ok else "na"})
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
                          "grade": c.get("grade") or "-", "verdict": c.get("verdict") or "-",
                          "grades": M.grades_text(c.get("grades") or {}) if c.get("grades") is not None else "-",
                          "why": c.get("why") or "",
                          "grade_cls": M.GRADE_CLASS.get(c.get("grade"), "na") if ok else "na",
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
    legend = [{"grade": g, "word": M.GRADE_WORD[g], "cls": M.GRADE_CLASS[g], "emoji": M.GRADE_EMOJI[g],
               "meaning": M.GRADE_MEANING[g]} for g in M.GRADES]
    impl = cfg.get("impl") or None
    return {
        "columns": [M.column_label(b, d, k) for b, d, k in cols], "n_grad_cells": n_grad,
        "condition_examples": [
            {k: (M.fmt_num(v, 4) if isinstance(v, (int, float)) else v) for k, v in r.items()} for r in cond],
        "profile": cfg.get("profile"), "seed": cfg.get("seed"), "status": doc.get("status"),
        "judge_profile": M.judge_profile(doc), "impl": impl,
        "started": doc.get("started"), "updated": doc.get("updated"), "elapsed": doc.get("elapsed_s"),
        "n_cells": len(doc["cells"]), "n_ok": n_ok,
        "n_examples": sum(g.get("examples", 0) for g in doc.get("groups", {}).values()),
        "backends": bs, "dtypes": ds, "grade_matrix": grade_rows, "legend": legend, "matrix": ulp_rows,
        "plots": plots, "summary": M.summary(doc), "top": top, "top_n": M.TOP,
        "well_conditioned": M.WELL_CONDITIONED,
        "findings": findings, "n_findings": len(findings),
        "by_severity": {s: sum(1 for x in findings if x["severity"] == s) for s in M.SEVERITY},
        "per_quantity": per_q, "panel": panel, "errata": errata, "env": env, "skipped": skipped, "errors": errors,
        "compiled": M.compiled_rows(doc), "autocast": M.autocast_rows(doc), "safe_k": M.SAFE_K,
        "compile_env": env.get("compiled") or {},
        "summation_order": ((doc.get("panels") or {}).get("summation_order") or {}).get("rows") or [],
        "summation_order_n": ((doc.get("panels") or {}).get("summation_order") or {}).get("n"),
    }


def snippet_text(cell, case):
    """The reproducer the runner executed and verified (regenerated from the stored arguments)."""
    from ..reproducers.gradients import grad_snippet
    from ..reproducers.values import snippet

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
        return (f"over {c['examples']} inputs: {M.grades_text(c.get('grades') or {})}; non-finite "
                f"{', '.join(f'{k}: {v}' for k, v in c['nonfinite'].items()) or 0}; flushed {c.get('flushed', 0)}; "
                f"max condition-aware error {M.fmt_num(c.get('max_cae'))}, max {M.fmt_num(c['max_ulp'])} ULP over "
                f"{c['elements']} gradient components")
    if metric == "nonfinite":
        return ", ".join(f"{k}: {v}" for k, v in c["nonfinite"].items())
    if metric == "invariant":
        return ", ".join(f"{k}: {v}" for k, v in c.get("invariants", {}).items())
    return (f"{M.grades_text(c.get('grades') or {})} over {c['elements']} elements; "
            f"max {M.fmt_num(c['max_ulp'])} ULP, p99 {M.fmt_num(c['p99_ulp'])} ULP")


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


def summary_lines(ctx) -> list:
    """The executive summary's sentences (Markdown and HTML alike): cells per verdict and grade."""
    out = []
    prof = ctx["judge_profile"]
    for kind, what in (("value", "forward-value cells"), ("grad", "gradient cells")):
        s = ctx["summary"][kind]
        if not s["cells"] and not s["ungraded"]:
            continue
        line = (f"{s['cells']} {what} judged under the `{prof}` profile: **{s['fail']} fail**, {s['pass']} pass. "
                f"Cells with `unstable` elements (beyond both allowances): {s['unstable']}; with non-finite "
                f"results: {s['nonfinite']}; with broken invariants: {s['invariant']}. Envelope-only cells (worst "
                "element within a stable algorithm's envelope but beyond what the conditioning forces: pass "
                f"`default`, fail `strict`): {s['envelope_only']}; `conditioned` or better: "
                f"{s['conditioned_or_better']}.")
        if s["ungraded"]:
            line += f" ({s['ungraded']} cells of an older results document carry no grades.)"
        out.append(line)
    return out


def markdown(ctx) -> str:
    L = []
    a = L.append
    a("# infoaudit error and stability report\n")
    impl = ctx["impl"]
    a(f"Search profile **{ctx['profile']}**, seed {ctx['seed']}, judging profile **{ctx['judge_profile']}**, "
      f"status {ctx['status']}; {ctx['n_ok']} audited cells (quantity x backend x variant x dtype x device) of "
      f"{ctx['n_cells']}, {ctx['n_examples']} generated and corpus inputs judged against the exact reference; "
      f"started {ctx['started']}, {ctx['elapsed'] or 0:.0f} s."
      + (f" Implementation under audit: `{impl['impl']}` ({impl['framework']}, {impl['quantity']})." if impl else "")
      + " Every number below comes from `results.json` in this folder; regenerate with `make report` (or "
        "`infoaudit report results.json`).\n")
    a("Every element of every result is graded by one judge (docs/grades.md), best to worst: "
      "`correctly_rounded` (<= 0.5 ULP), `faithful` (< 1 ULP), `flushed`, `conditioned` (within c(n) u (N + |y*|), "
      "what the conditioning forces; N = sum |dy/dx_j| |x_j|), `envelope` (within c(n) u S, what a stable "
      "algorithm for the formula loses), `unstable` (beyond both), and the classes `invariant` and `nonfinite`. "
      "A cell's grade is its worst element's; kappa = N / |y*| is the condition number.\n")
    a("## Executive summary\n")
    for line in summary_lines(ctx):
        a(f"- {line}")
    a("")
    a(f"### The {ctx['top_n']} worst findings at well-conditioned inputs\n")
    if ctx["top"]:
        a(f"Relative error at inputs with condition number kappa <= {ctx['well_conditioned']:g} (the problem "
          "forces at most a few bits there), graded beyond the conditioning; the best other implementation "
          "audited on the same input beside it.\n")
        a("| # | finding | grade | relative error | ULP | kappa | input | best on the same input |")
        a("|---|---|---|---|---|---|---|---|")
        for i, t in enumerate(ctx["top"], 1):
            a(f"| {i} | [{t['rank']}](#finding-{t['rank']}) {_md(t['label'])} | {t['grade']} | {t['rel_pct']} | "
              f"{t['ulp']} | {t['kappa']} | "
              f"`{_md(t['input'])}` | {_md(t['best']) or '-'} |")
        a("")
    else:
        a(f"None: no element beyond the conditioning at kappa <= {ctx['well_conditioned']:g}.\n")
    a("## Grade matrix\n")
    a("The worst grade over each backend's variants per quantity and dtype (verdicts, counts and numbers per "
      "variant in the per-quantity tables; on hover in report.html). Legend:\n")
    for g in ctx["legend"]:
        a(f"- {g['emoji']} **{g['word']}** (`{g['grade']}`): {g['meaning']}")
    a("- n/a: not supported or not run (reason in the per-quantity tables)\n")
    head = "| quantity | " + " | ".join(ctx["columns"]) + " |"
    rule = "|" + "---|" * (1 + len(ctx["columns"]))
    a(head)
    a(rule)
    for r in ctx["grade_matrix"]:
        a(f"| {r['quantity']} | " + " | ".join((f"{c['emoji']} {c['text']}" if c["emoji"] else c["text"])
                                              + (" \u2717" if c["verdict"] == "fail" else "")
                                              for c in r["cells"]) + " |")
    a(f"\n\u2717: the cell fails under `{ctx['judge_profile']}`. Columns named *grad* hold the gradients (the VJP "
      "through the framework's autodiff, every float argument, against the exact derivative).\n")
    a("## Findings, ranked by severity\n")
    bs = ", ".join(f"{v} {k}" for k, v in ctx["by_severity"].items())
    a(f"{ctx['n_findings']} findings ({bs}): non-finite results first, then broken invariants, then `unstable` "
      "elements, then `envelope` ones (within a stable algorithm's envelope, beyond the conditioning). "
      "Non-finite and invariant findings are merged over a backend's variants and dtypes. Each input was found by "
      "the search or the corpus (or the gate's probes), shrunk to a minimal reproducer, and its snippet was "
      "executed to check that it reproduces the value.\n")
    for fnd in ctx["findings"][:MD_FINDINGS]:
        a(f"### {fnd['rank']}. {_md(fnd['title'])}\n")
        a(f"- grade **{fnd['grade']}**" + (f": {_md(fnd['why'])}" if fnd["why"] else "")
          + f"; severity {fnd['severity']}; {fnd['counts']}")
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
              f"error {fnd['ulp']} ULP, relative {fnd['rel']}, absolute {fnd['abs']}; condition number kappa "
              f"{fnd['kappa']}")
        if fnd["best"]:
            a(f"- best on the same input: {_md(fnd['best'])}")
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
    _md_condition(a, ctx)
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
        a("| backend | variant | dtype | verdict | grade | elements per grade | inputs | max ULP | p99 ULP | max rel | "
          "max abs | non-finite | invariants |")
        a("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in pq["rows"]:
            if r["status"] != "ok":
                a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | - | - | {_md(r['status'])}: "
                  f"{_md(r['reason'])[:120]} | | | | | | | |")
                continue
            a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | {r['verdict']} | {r['grade']} | {_md(r['grades'])} | "
              f"{r['examples']} | {r['max_ulp']} | {r['p99_ulp']} | {r['max_rel']} | {r['max_abs']} | "
              f"{_md(r['nonfinite'])} | {_md(r['invariants'])} |")
        a("")
        if pq["grad_rows"]:
            a("Gradients (VJP through autodiff against the exact derivative):\n")
            a("| backend | variant | dtype | autodiff | verdict | grade | components per grade | inputs | max ULP | "
              "max cae | p99 cae | flushed | boundary | non-finite | arguments |")
            a("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in pq["grad_rows"]:
                if r["status"] != "ok":
                    a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | - | - | - | {_md(r['status'])}: "
                      f"{_md(r['reason'])[:120]} | | | | | | | | |")
                    continue
                a(f"| {r['backend']} | {r['variant']} | {r['dtype']} | {_md(r['how'])} | {r['verdict']} | "
                  f"{r['grade']} | {_md(r['grades'])} | {r['examples']} | {r['max_ulp']} | {r['max_cae']} | "
                  f"{r['p99_cae']} | {r['flushed']} | {r['boundary']} | {_md(r['nonfinite'])} | {_md(r['args'])} |")
            a("")
    a("## Appendix A: worst max-ULP error\n")
    a("The raw figure: the worst max ULP error over each backend's variants. It is dominated by outputs that "
      "cancel to ~0 or are subnormal (where one ULP is tiny), so it does not separate a broken algorithm from a "
      "fine one; the grades above do. **NF** = a non-finite result was found, *inv* = an invariant finding; "
      "*grad* columns: *fl* = a gradient component was flushed to 0.\n")
    if ctx["plots"].get("summary"):
        a(f"![max ULP matrix]({ctx['plots']['summary']})\n")
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
    a("")
    _md_compiled(a, ctx)
    a("## Appendix B: the seeds' worked examples\n")
    e = ctx["errata"]
    if e.get("available") and e.get("rows"):
        cols = [c for c in ("claim", "source", "printed", "exact", "verdict", "note") if any(c in r for r in e["rows"])]
        a("| " + " | ".join(cols) + " |")
        a("|" + "---|" * len(cols))
        for r in e["rows"]:
            a("| " + " | ".join(_md(r.get(c, "")) for c in cols) + " |")
        a("")
        for r in e["rows"]:
            if r.get("table"):  # a measured claim's numbers (e.g. the sampled-softmax bias)
                a(f"**{_md(r['claim'])}** ({_md(r.get('id', ''))}, verdict {_md(r['verdict'])}):\n")
                a("| " + " | ".join(_md(h) for h in r["table"]["head"]) + " |")
                a("|" + "---|" * len(r["table"]["head"]))
                for row in r["table"]["rows"]:
                    a("| " + " | ".join(_md(x) for x in row) + " |")
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


def _md_compiled(a, ctx):
    """Compiled cells against eager, and which losses are safe to leave to autocast."""
    ce = ctx["compile_env"]
    if ctx["compiled"]:
        a("## Compiled against eager (torch.compile)\n")
        a(f"Error ratio = the compiled cell's worst error against the exact value / the eager op's on the same "
          f"inputs (errors floored at 1 ULP). {ce.get('compiles', 0)} compiles took {ce.get('seconds', 0)} s; "
          f"FTZ/DAZ changed by compiling: {', '.join(ce.get('fp_changed') or []) or 'nothing'}.\n")
        a("| quantity | kind | dtype | variant | grade | verdict | ratio | compiled vs eager | compile s | reproducer |")
        a("|---|---|---|---|---|---|---|---|---|---|")
        for r in ctx["compiled"]:
            a(f"| {r['quantity']} | {r['kind']} | {r['dtype']} | {r['variant']} | {r['grade']} | {r['verdict']} | "
              f"{r['ratio']} | {_md(r['text'])} | {r['compile_s']} | {'yes' if r['reproducer'] else '-'} |")
        a("")
        for r in ctx["compiled"]:
            if r["code"]:
                a(f"Reproducer, {r['quantity']} {r['dtype']} {r['variant']} ({_md(r['text'])}); it runs both:\n")
                a("```python\n" + r["code"].rstrip() + "\n```\n")
    if ctx["summation_order"]:
        a(f"Summation order of each backend's row sum (`infoaudit order`, float32, {ctx['summation_order_n']} terms): "
          + "; ".join(f"{r['target']}: {r.get('order') or 'skipped: ' + str(r.get('skipped'))}"
                      for r in ctx["summation_order"]) + ".\n")
    if ctx["autocast"]:
        a("## Which losses are safe to leave to autocast\n")
        a(f"safe = passes the judge at the group's dtype and its error is at most {ctx['safe_k']:g} x the eager "
          "op's on the same inputs.\n")
        a("| quantity | dtype | variant | returned / computed | grade | verdict | ratio | safe |")
        a("|---|---|---|---|---|---|---|---|")
        for r in ctx["autocast"]:
            a(f"| {r['quantity']} | {r['dtype']} | {r['variant']} | {_md(r['how'])} | {r['grade']} | "
              f"{r['verdict']} | {r['ratio']} | {r['safe']} |")
        a("")


def _md_condition(a, ctx):
    a("## Gradients and the condition-aware error\n")
    a(f"{ctx['n_grad_cells']} gradient cells: every float argument's gradient of every torch and JAX op, taken "
      "with the framework's autodiff (torch.autograd.grad, jax.vjp under jax.jit) with a fixed cotangent, is "
      "compared with the exact vector-Jacobian product (closed forms evaluated at high precision, correctly "
      "rounded) and graded by the same judge: N = sum_j |dg/dx_j| |x_j| from the exact second derivatives (the "
      "componentwise condition number kappa = N / |g*|), S = the magnitudes of the closed-form VJP's terms "
      "(softmax - onehot, s (1 - s), ...). The tables also show the *condition-aware error* "
      "cae = |g - g*| / (u (N + |g*|)): perturbing every input by a relative u moves g* by up to about u N, so any "
      "algorithm working in the dtype may be that wrong; cae of order 1 is the problem's conditioning.\n")
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


__all__ = ["context", "markdown", "html", "snippet_text", "summary_lines"]
