"""``infoaudit diff OLD.json NEW.json``: what changed between two runs (two versions, CPU vs CUDA,
two machines, eager vs jit).

:func:`diff_documents` compares two results documents (loaded with
:func:`.compare_cells.load_document`) cell by cell with the "worse" rule of
:mod:`.compare_cells` (stated there and in :attr:`Rule.describe`), lists the findings that are
new, fixed or changed with their stored reproducers, re-runs those reproducers (and the worst case
of every cell whose support changed) in *this* environment against the exact reference
(:func:`infoaudit.differential.compare`), and lists the fingerprint differences
(:func:`.fingerprint.fp_changes`) with the cells each one may explain. The result is a JSON-able
dict (``"schema": "infoaudit.diff", "version": 1``) rendered by :func:`render_markdown` and
:func:`render_html`; ``worse`` is true when at least one cell got worse (exit status 1).
"""
from __future__ import annotations

import datetime as _dt
import html
import math

from .compare_cells import (
    Rule,
    cell_findings,
    compare_cell,
    compare_findings,
    fmt,
    match_cells,
    num,
)
from .fingerprint import fp_changes
from .schema import jsonable
from .schema import num as json_number

SCHEMA = "infoaudit.diff"
VERSION = 1
CHANGE_ORDER = ("worse", "better", "changed", "same")
SEARCH_CONFIG = ("config.profile", "config.seed", "config.settings")  # config that changes the inputs searched

# which cells a package's version can change: backends, or ("dtype", d), or "all"
PACKAGE_SCOPE = {
    "numpy": {"numpy", "scipy"}, "scipy": {"scipy"}, "ml_dtypes": ("dtype", "bfloat16"), "torch": {"torch"},
    "jax": {"jax"}, "jaxlib": {"jax"}, "optax": ("variant", "optax"),
    "hypothesis": "all", "python": "all",
}
PACKAGE_WHY = {
    "hypothesis": "generates the search inputs: another version searches other inputs, so any cell may differ",
    "ml_dtypes": "provides the bfloat16 dtype that numpy/scipy/JAX arrays use",
    "numpy": "numpy kernels (and the arrays scipy works on)",
    "python": "the interpreter (and hypothesis's input generation through it)",
    "mpmath": "the exact reference (must not change a correct answer)",
    "python-flint": "the exact reference's ball arithmetic (must not change a correct answer)",
    "gmpy2": "mpmath's integer backend (must not change a correct answer)",
    "numba": "the reference's compiled fast path (certified: must not change a correct answer)",
    "llvmlite": "numba's compiler (must not change a correct answer)",
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _side(doc, path) -> dict:
    env = doc.get("environment") or {}
    fp = env.get("fingerprint") if isinstance(env.get("fingerprint"), dict) else None
    cfg = doc.get("config") or {}
    return {"path": str(path) if path is not None else None, "status": doc.get("status"),
            "started": doc.get("started"), "cells": len(doc.get("cells") or {}),
            "config": {k: cfg.get(k) for k in ("profile", "seed", "backends", "dtypes", "quantities") if k in cfg},
            "packages": (fp or {}).get("packages") or env.get("packages") or {},
            "python": (fp or {}).get("python") or env.get("python"),
            "platform": (fp or {}).get("platform") or env.get("platform"),
            "cpu": ((fp or {}).get("cpu") or {}).get("model") or env.get("cpu"),
            "has_fingerprint": fp is not None}


def _fingerprint_of(doc) -> dict:
    """The document's fingerprint, or what older documents recorded (packages, python, platform)."""
    env = doc.get("environment") or {}
    fp = env.get("fingerprint")
    if isinstance(fp, dict) and "error" not in fp:
        after = env.get("fingerprint_after")  # fp_state() at the end of the run, where recorded
        return dict(fp, fp_after=after) if isinstance(after, dict) else fp
    pk = dict(env.get("packages") or {})
    return {"python": env.get("python"), "platform": env.get("platform"),
            "packages": pk, "cpu": {"model": env.get("cpu")}}


def _config_changes(old, new) -> list:
    a, b = old.get("config") or {}, new.get("config") or {}
    out = []
    for k in ("profile", "seed", "settings", "backends", "dtypes", "quantities", "grad"):
        if a.get(k) != b.get(k):
            out.append({"path": f"config.{k}", "old": a.get(k), "new": b.get(k), "kind": "config"})
    return out


def _in_scope(scope, cell) -> bool:
    if scope == "all":
        return True
    if isinstance(scope, tuple):
        return cell.get(scope[0]) == scope[1]
    return cell.get("backend") in scope


def _scope_of_change(ch):
    """Which cells a fingerprint/config change can affect (a scope as in PACKAGE_SCOPE), and why."""
    path, kind = ch["path"], ch["kind"]
    if kind == "config":
        if path in SEARCH_CONFIG:
            return "all", "the runs were configured differently: other inputs were searched"
        return None, "which cells were run (does not change a cell's inputs)"
    if path.startswith("frameworks."):
        fw = path.split(".")[1]
        why = {"version": f"the {fw} release", "device": "devices and driver",
               "precision": "precision settings"}.get(kind, f"{fw}'s state")
        return ({"numpy", "scipy"} if fw == "numpy" else {fw}), why
    if path.startswith("packages.") or path == "python":
        name = path.split(".", 1)[1] if "." in path else path
        scope = PACKAGE_SCOPE.get(name)
        if scope is None:
            return ("all", PACKAGE_WHY[name]) if name in PACKAGE_WHY else (None, "")
        return scope, PACKAGE_WHY.get(name, f"{name} computes these cells")
    if path.startswith(("fp.ftz.", "fp_after.ftz.")):
        # fp.ftz.<framework>/<device>.<dtype>
        rest = path.split(".ftz.", 1)[1]
        fwdev, _, dtype = rest.partition(".")
        fw = fwdev.split("/")[0]
        backends = {"numpy", "scipy"} if fw == "numpy" else {fw}
        return ("and", backends, dtype), "flush-to-zero changes subnormal results and inputs"
    if kind == "precision":
        if ".torch." in path or "tf32" in path.lower():
            return {"torch"}, "matmul / TF32 precision"
        if ".jax." in path or "XLA" in path or "JAX" in path:
            return {"jax"}, "XLA / JAX precision settings"
        return "all", "precision settings"
    if kind == "device":
        if "torch" in path:
            return {"torch"}, "devices and driver"
        if "jax" in path:
            return {"jax"}, "devices"
        return "all", "devices"
    if kind == "cpu":
        return "all", "CPU flags select vectorised kernels"
    if kind == "threads":
        return "all", "thread counts change reduction order"
    return None, ""


def _matches_scope(scope, cell) -> bool:
    if scope is None:
        return False
    if isinstance(scope, tuple) and scope and scope[0] == "and":
        _, backends, dtype = scope
        return cell.get("backend") in backends and cell.get("dtype") == dtype
    return _in_scope(scope, cell)


def explain(changes, cell_rows) -> list:
    """Each environment/config change with the changed cells it may explain, most specific first:
    ``[{"path", "old", "new", "kind", "why", "explains": n, "worse": n, "keys": [...]}]``."""
    out = []
    moved = [r for r in cell_rows if r["change"] != "same"]
    for ch in changes:
        scope, why = _scope_of_change(ch)
        keys = [r["key"] for r in moved if _matches_scope(scope, r["cell"])]
        nworse = sum(1 for r in moved if r["change"] == "worse" and r["key"] in set(keys))
        out.append(dict(ch, why=why, explains=len(keys), worse=nworse, keys=keys[:20],
                        specific=scope not in ("all", None)))
    out.sort(key=lambda r: (-(r["explains"] > 0 and r["specific"]), -r["worse"], -r["explains"],
                            not r["path"].startswith("packages."), r["path"]))
    return out


# ------------------------------------------------------------------------------ re-running reproducers


def current_environment() -> dict:
    from .fingerprint import package_version

    return {k: package_version(k) for k in ("numpy", "scipy", "ml_dtypes", "torch", "jax", "jaxlib", "optax")}


def _value_at(a, index):
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    try:
        return float(a[tuple(index)] if index else a.reshape(-1)[0])
    except (IndexError, ValueError):
        return None


def _same(a, b) -> bool:
    a, b = num(a), num(b)
    if a is None or b is None:
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and (a != 0 or math.copysign(1, a) == math.copysign(1, b))


def rerun_case(cell: dict, case: dict, old_case=None, new_case=None) -> dict:
    """Run ``case`` (a stored worst case with encoded ``args``) through this environment's op of
    ``cell`` and judge it against the exact reference. ``{"ran", "status", "computed", "expected",
    "ulp", "rel", "class", "like": "old" | "new" | "both" | "neither" | None, "error", "why"}``."""
    if cell.get("kind") == "grad":
        return {"ran": False, "why": "gradient cells are not re-run by diff (infoaudit run --corpus-from re-runs them)"}
    if not case or case.get("args") is None:
        return {"ran": False, "why": "no stored arguments (input too large to store)"}
    backend = cell.get("backend", "")
    if backend.startswith("user"):
        return {"ran": False, "why": "a user's implementation: re-run it with infoaudit gate"}
    import numpy as np

    from .. import differential as C
    from ..backends import BackendUnavailable
    from .schema import decode_args

    try:
        args = decode_args(case["args"])
    except Exception as e:  # noqa: BLE001
        return {"ran": False, "why": f"arguments could not be decoded ({type(e).__name__}: {e})"}
    index = list(case.get("index") or [])
    try:
        with np.errstate(all="ignore"):
            c = C.compare(cell["quantity"], backend, *args, dtype=cell["dtype"], variant=cell.get("variant"),
                          device=cell.get("device", "cpu"))
    except BackendUnavailable as e:
        return {"ran": False, "why": str(e)}
    except C.Unsupported as e:
        res = {"ran": True, "status": "unsupported", "error": str(e), "records": _records(old_case, new_case)}
        res["like"] = _like(old_case, new_case, None, error=True)
        return res
    except Exception as e:  # noqa: BLE001 - a reference limitation or a broken input: say so, never crash
        return {"ran": False, "why": f"{type(e).__name__}: {e}"}
    e = c.errors
    comp = _value_at(c.result, index)
    res = {"ran": True, "status": "ok", "index": index, "computed": json_number(comp),
           "expected": json_number(_value_at(e.expected, index)), "ulp": json_number(_value_at(e.ulp, index)),
           "rel": json_number(_value_at(e.rel, index)), "class": str(np.asarray(e.nonfinite)[tuple(index)])
           if index and np.asarray(e.nonfinite).ndim == len(index) else "",
           "max_ulp": json_number(float(np.nanmax(e.ulp)) if np.size(e.ulp) and np.isfinite(e.ulp).any() else None),
           "nonfinite_total": int(np.count_nonzero(np.asarray(e.nonfinite) != ""))}
    res["records"] = _records(old_case, new_case)
    res["like"] = _like(old_case, new_case, comp)
    return res


def _records(old_case, new_case) -> list:
    return [s for s, c in (("old", old_case), ("new", new_case)) if c is not None]


def _like(old_case, new_case, computed, error=False):
    """Which side's recorded outcome this environment reproduces."""
    if old_case is None and new_case is None:
        return None
    o = (old_case is not None) and (_same(old_case.get("computed"), computed) if not error else
                                    old_case.get("error") is True)
    n = (new_case is not None) and (_same(new_case.get("computed"), computed) if not error else
                                    new_case.get("error") is True)
    return "both" if o and n else "old" if o else "new" if n else "neither"


def _case_brief(case) -> dict | None:
    if not case:
        return None
    keep = ("metric", "index", "computed", "expected", "exact_hi", "exact_lo", "ulp", "rel", "class", "source",
            "args", "shapes", "reproduced", "snippet_kind")
    return {k: case[k] for k in keep if k in case}


# ------------------------------------------------------------------------------ the diff


def diff_documents(old: dict, new: dict, *, rule: Rule = Rule(), matches=(), rerun=True, rerun_limit=60,
                   old_path=None, new_path=None, log=None) -> dict:
    """The diff of two results documents as a JSON-able dict (see the module docstring)."""
    pairs, only_old, only_new = match_cells(old.get("cells") or {}, new.get("cells") or {}, matches)
    rows = []
    findings = {"new": [], "fixed": [], "changed": []}
    status_changes = []
    for key in sorted(pairs):
        o, n = pairs[key]
        cmp = compare_cell(o, n, rule)
        row = {"key": key, "quantity": n.get("quantity"), "backend": n.get("backend"), "variant": n.get("variant"),
               "dtype": n.get("dtype"), "device": n.get("device"), "kind": n.get("kind", "value"), **cmp}
        rows.append(dict(row, cell=n))
        if o.get("status", "ok") == "ok" and n.get("status", "ok") == "ok":
            fnd = compare_findings(o, n, rule)
            for what, items in fnd.items():
                for it in items:
                    findings[what].append({"key": key, **it, "cell_change": cmp["change"],
                                           "_cell": n if it["side"] == "new" else o})
        elif o.get("status", "ok") != n.get("status", "ok"):
            ran = o if o.get("status", "ok") == "ok" else n if n.get("status", "ok") == "ok" else None
            case = None
            if ran is not None:
                fs = cell_findings(ran)
                for w in ("grade", "well_conditioned", "ulp", "scaled", "rel", "nonfinite", "invariant"):
                    cand = (ran.get("worst") or {}).get(w)
                    if cand:
                        case = cand.get("shrunk") or cand
                        break
                if case is None and fs:
                    case = next((f["case"] for f in fs.values() if f["case"]), None)
            status_changes.append({"key": key, "old_status": o.get("status", "ok"), "new_status": n.get("status", "ok"),
                                   "old_reason": o.get("reason", ""), "new_reason": n.get("reason", ""),
                                   "change": cmp["change"], "case_side": "old" if ran is o else "new" if ran is n
                                   else None, "case": case, "_cell": ran or n})
    # re-run the reproducers here
    budget = rerun_limit if rerun else 0
    reruns = 0
    for item in status_changes:
        side = item["case_side"]
        if budget and item["case"] is not None:
            oc = dict(item["case"]) if side == "old" else {"error": True}
            nc = dict(item["case"]) if side == "new" else {"error": True}
            item["rerun"] = rerun_case(item["_cell"], item["case"], oc, nc)
            budget -= 1
            reruns += 1
        else:
            item["rerun"] = {"ran": False, "why": "not re-run (--no-rerun or limit)" if item["case"] is not None
                             else "no stored case"}
    for what in ("new", "changed", "fixed"):
        for it in findings[what]:
            if budget and it.get("case") is not None:
                oc = it.get("old_case") if what == "changed" else (it["case"] if what == "fixed" else None)
                if what == "changed" and (oc or {}).get("args") != it["case"].get("args"):
                    oc = None  # OLD's worst case was another input: its value says nothing about this one
                nc = it["case"] if what in ("new", "changed") else None
                it["rerun"] = rerun_case(it["_cell"], it["case"], oc, nc)
                budget -= 1
                reruns += 1
                if log:
                    log(f"re-ran {it['key']} {it['id']}")
            else:
                it["rerun"] = {"ran": False, "why": "not re-run (--no-rerun or limit)" if it.get("case") is not None
                               else "no stored case"}
    for it in status_changes + [it for v in findings.values() for it in v]:
        it["reproducer"] = _snippet(it)
    # the environment
    both_fp = _side(old, None)["has_fingerprint"] and _side(new, None)["has_fingerprint"]
    env_changes = fp_changes(_fingerprint_of(old), _fingerprint_of(new), only_common=not both_fp) \
        + _config_changes(old, new)
    explanations = explain(env_changes, rows)
    counts = {c: sum(1 for r in rows if r["change"] == c) for c in CHANGE_ORDER}
    counts.update(cells_compared=len(rows), only_old=len(only_old), only_new=len(only_new),
                  findings_new=len(findings["new"]), findings_fixed=len(findings["fixed"]),
                  findings_changed=len(findings["changed"]), reruns=reruns)
    missing_worse = [k for k, c in only_old.items() if rule.missing_is_worse and c.get("status", "ok") == "ok"]
    worse = counts["worse"] > 0 or bool(missing_worse)

    def clean(d):
        return {k: (_case_brief(v) if k in ("case", "old_case") else v) for k, v in d.items() if not k.startswith("_")}

    return jsonable({
        "schema": SCHEMA, "version": VERSION, "created": _now(),
        "old": _side(old, old_path), "new": _side(new, new_path),
        "rule": rule.as_dict(), "rule_text": rule.describe(),
        "matches": [list(m) for m in matches],
        "worse": worse, "exit_code": 1 if worse else 0,
        "counts": counts,
        "cells": [{k: v for k, v in r.items() if k != "cell"} for r in rows if r["change"] != "same"],
        "status_changes": [clean(s) for s in status_changes],
        "only_old": [_brief_cell(k, c) for k, c in sorted(only_old.items())],
        "only_new": [_brief_cell(k, c) for k, c in sorted(only_new.items())],
        "missing_counted_worse": missing_worse,
        "findings": {k: [clean(it) for it in v] for k, v in findings.items()},
        "environment": {"changes": explanations, "old_has_fingerprint": _side(old, None)["has_fingerprint"],
                        "new_has_fingerprint": _side(new, None)["has_fingerprint"]},
        "rerun_environment": current_environment() if reruns else None,
    })


def _brief_cell(key, c) -> dict:
    return {"key": key, "status": c.get("status", "ok"), "reason": c.get("reason", ""),
            "max_ulp": c.get("max_ulp"), "nonfinite_total": c.get("nonfinite_total")}


# ------------------------------------------------------------------------------ rendering


def _v(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return fmt(x)
    return str(x)


def _metric(summary, key) -> str:
    """A cell figure for the tables: '-' where the cell did not run."""
    if summary.get("status", "ok") != "ok":
        return "-"
    v = summary.get(key)
    return fmt(v) if key.startswith("max") else _v(v)


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _rerun_text(r) -> str:
    if not r:
        return "-"
    if not r.get("ran"):
        return f"not re-run: {r.get('why', '')}"
    recs = r.get("records") or []
    like = {"old": "as OLD recorded", "new": "as NEW recorded", "both": "as both recorded",
            "neither": ("unlike either record" if len(recs) != 1 else f"unlike {recs[0].upper()}'s record")
            }.get(r.get("like"), "")
    if r.get("status") == "unsupported":
        return f"raises here: {r.get('error', '')}" + (f" ({like})" if like else "")
    cls = f", non-finite [{r['class']}]" if r.get("class") else ""
    return (f"here: {fmt(r.get('computed'))} vs exact {fmt(r.get('expected'))}, {fmt(r.get('ulp'))} ULP{cls}"
            + (f" ({like})" if like else ""))


def _case_text(case) -> str:
    if not case:
        return "no stored case"
    shapes = case.get("shapes") or []
    idx = case.get("index")
    return (f"input shapes {shapes}, index {idx}: computed {fmt(case.get('computed'))}, exact "
            f"{fmt(case.get('expected'))} ({fmt(case.get('ulp'))} ULP)" + (f" [{case['class']}]" if case.get("class") else ""))


def summary_markdown(d) -> str:
    """The short Markdown summary printed on stdout."""
    c = d["counts"]
    o, n = d["old"], d["new"]
    lines = [f"# infoaudit diff: {o.get('path')} -> {n.get('path')}", "",
             f"**{'WORSE' if d['worse'] else 'not worse'}** (exit {d['exit_code']}): {c['cells_compared']} cells "
             f"compared: {c['worse']} worse, {c['better']} better, {c['changed']} changed, {c['same']} same; "
             f"{c['only_old']} only in OLD, {c['only_new']} only in NEW. Findings: {c['findings_new']} new, "
             f"{c['findings_fixed']} fixed, {c['findings_changed']} changed.", ""]
    searched = [e["path"][len("config."):] for e in d["environment"]["changes"] if e["path"] in SEARCH_CONFIG]
    if searched:
        lines += [f"Note: the two runs differ in {', '.join(searched)}: they searched different inputs, so cell "
                  "differences mix the environment with the search.", ""]
    worse = [r for r in d["cells"] if r["change"] == "worse"]
    if worse:
        lines.append("Worse cells:")
        for r in worse[:30]:
            lines.append(f"- `{r['key']}`: " + "; ".join(r["worse"]))
        if len(worse) > 30:
            lines.append(f"- ... and {len(worse) - 30} more (see the full report)")
        lines.append("")
    top = [e for e in d["environment"]["changes"] if e["explains"]][:8]
    if top:
        lines.append("Environment differences that may explain them:")
        for e in top:
            lines.append(f"- {e['path']}: {_v(e['old'])} -> {_v(e['new'])} ({e['why']}; {e['explains']} changed "
                         f"cell(s), {e['worse']} worse)")
        lines.append("")
    return "\n".join(lines)


def render_markdown(d) -> str:
    o, n = d["old"], d["new"]
    lines = [summary_markdown(d), "## The two runs", "",
             "| | OLD | NEW |", "|---|---|---|"]
    for label, k in (("file", "path"), ("status", "status"), ("started", "started"), ("cells", "cells"),
                     ("python", "python"), ("platform", "platform"), ("cpu", "cpu")):
        lines.append(f"| {label} | {_md(_v(o.get(k)))} | {_md(_v(n.get(k)))} |")
    for k in ("profile", "seed", "backends", "dtypes"):
        lines.append(f"| {k} | {_md(_v(o['config'].get(k)))} | {_md(_v(n['config'].get(k)))} |")
    pk = sorted(set(o["packages"]) | set(n["packages"]))
    for p in pk:
        a, b = o["packages"].get(p), n["packages"].get(p)
        mark = " **changed**" if a != b else ""
        lines.append(f"| {p} | {_v(a)} | {_v(b)}{mark} |")
    if d["matches"]:
        lines += ["", "Cells matched across: " + ", ".join(f"{f} {a} (OLD) = {b} (NEW)" for f, a, b in d["matches"])]
    lines += ["", "## Rule", "", d["rule_text"] + ".", ""]
    lines += ["## Cells that changed", ""]
    if d["cells"]:
        lines += ["| cell | change | what | OLD max ULP | NEW max ULP | OLD non-finite | NEW non-finite |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(d["cells"], key=lambda r: (CHANGE_ORDER.index(r["change"]), r["key"])):
            what = "; ".join(r["worse"] + r["better"] + r["changed"])
            lines.append(f"| `{r['key']}` | {r['change']} | {_md(what)} | {_metric(r['old'], 'max_ulp')} | "
                         f"{_metric(r['new'], 'max_ulp')} | {_metric(r['old'], 'nonfinite_total')} | "
                         f"{_metric(r['new'], 'nonfinite_total')} |")
    else:
        lines.append("No cell changed.")
    lines.append("")
    if d["status_changes"]:
        lines += ["## Support changed (re-run here)", ""]
        for s in d["status_changes"]:
            lines.append(f"- `{s['key']}`: {s['old_status']} -> {s['new_status']}"
                         + (f" ({_md(s['new_reason'] or s['old_reason'])})" if (s['new_reason'] or s['old_reason']) else ""))
            if s.get("case"):
                lines.append(f"  - {s['case_side'].upper()}'s worst case: {_case_text(s['case'])}")
            lines.append(f"  - {_rerun_text(s.get('rerun'))}")
        lines.append("")
    for what, title in (("new", "New findings"), ("fixed", "Fixed findings"), ("changed", "Changed findings")):
        items = d["findings"][what]
        lines += [f"## {title} ({len(items)})", ""]
        if not items:
            lines += ["None.", ""]
            continue
        for it in items:
            sc = f"{_v(it['old_score'])} -> {_v(it['new_score'])}"
            lines.append(f"- `{it['key']}` {it['id']} ({sc})")
            lines.append(f"  - {it['side'].upper()}'s case: {_case_text(it.get('case'))}")
            lines.append(f"  - {_rerun_text(it.get('rerun'))}")
            snip = it.get("reproducer")
            if snip:
                lines += ["", "    ```python"] + ["    " + ln for ln in snip.rstrip().splitlines()] + ["    ```", ""]
        lines.append("")
    lines += ["## Environment differences", ""]
    ch = d["environment"]["changes"]
    if not d["environment"]["old_has_fingerprint"] or not d["environment"]["new_has_fingerprint"]:
        lines += ["(one of the documents has no environment fingerprint: only package versions, python and "
                  "platform are compared)", ""]
    if ch:
        lines += ["| what | OLD | NEW | may explain | why |", "|---|---|---|---|---|"]
        for e in ch:
            lines.append(f"| {_md(e['path'])} | {_md(_v(e['old']))} | {_md(_v(e['new']))} | {e['explains']} cell(s), "
                         f"{e['worse']} worse | {_md(e['why'])} |")
    else:
        lines.append("None recorded.")
    lines.append("")
    for side, title in (("only_old", "Cells only in OLD"), ("only_new", "Cells only in NEW")):
        if d[side]:
            lines += [f"## {title} ({len(d[side])})", ""]
            for c in d[side][:200]:
                lines.append(f"- `{c['key']}` ({c['status']}" + (f": {_md(c['reason'])}" if c["reason"] else "") + ")")
            if len(d[side]) > 200:
                lines.append(f"- ... {len(d[side]) - 200} more")
            lines.append("")
    if d.get("rerun_environment"):
        lines += ["Re-runs used this environment: " + ", ".join(f"{k} {v}" for k, v in d["rerun_environment"].items()
                                                               if v), ""]
    return "\n".join(lines)


def _snippet(item) -> str:
    """A copy-paste reproducer of a finding (the report's snippet builder), or ''."""
    case = item.get("case")
    cell = item.get("_cell")
    if not case or case.get("args") is None or cell is None:
        return ""
    try:
        from ..reproducers.values import snippet
    except Exception:  # noqa: BLE001
        return ""
    try:
        return snippet(cell, case, native=case.get("snippet_kind") != "table")
    except Exception:  # noqa: BLE001
        return ""


def render_html(d, markdown_text=None) -> str:
    """A self-contained HTML page of the diff (tables and lists as in the Markdown)."""
    esc = html.escape
    c = d["counts"]
    o, n = d["old"], d["new"]
    colour = {"worse": "#fde2e1", "better": "#e3f6e3", "changed": "#fff6d6", "same": "#ffffff"}
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>infoaudit diff</title><style>",
           "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
           "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top}"
           "code,pre{font-size:12px}pre{background:#f6f6f6;padding:6px;overflow-x:auto}.worse{background:#fde2e1}",
           "</style></head><body>",
           f"<h1>infoaudit diff</h1><p><code>{esc(str(o.get('path')))}</code> &rarr; <code>{esc(str(n.get('path')))}</code></p>",
           f"<p><b>{'WORSE' if d['worse'] else 'not worse'}</b> (exit {d['exit_code']}): {c['cells_compared']} cells "
           f"compared: {c['worse']} worse, {c['better']} better, {c['changed']} changed, {c['same']} same; "
           f"{c['only_old']} only in OLD, {c['only_new']} only in NEW. Findings: {c['findings_new']} new, "
           f"{c['findings_fixed']} fixed, {c['findings_changed']} changed.</p>",
           f"<p><i>Rule:</i> {esc(d['rule_text'])}.</p>",
           "<h2>The two runs</h2><table><tr><th></th><th>OLD</th><th>NEW</th></tr>"]
    for label, k in (("file", "path"), ("status", "status"), ("cells", "cells"), ("python", "python"),
                     ("platform", "platform"), ("cpu", "cpu")):
        out.append(f"<tr><td>{label}</td><td>{esc(_v(o.get(k)))}</td><td>{esc(_v(n.get(k)))}</td></tr>")
    for p in sorted(set(o["packages"]) | set(n["packages"])):
        a, b = o["packages"].get(p), n["packages"].get(p)
        cls = " class='worse'" if a != b else ""
        out.append(f"<tr{cls}><td>{esc(p)}</td><td>{esc(_v(a))}</td><td>{esc(_v(b))}</td></tr>")
    out.append("</table><h2>Cells that changed</h2>")
    if d["cells"]:
        out.append("<table><tr><th>cell</th><th>change</th><th>what</th><th>OLD max ULP</th><th>NEW max ULP</th>"
                   "<th>OLD non-finite</th><th>NEW non-finite</th></tr>")
        for r in sorted(d["cells"], key=lambda r: (CHANGE_ORDER.index(r["change"]), r["key"])):
            what = "; ".join(r["worse"] + r["better"] + r["changed"])
            out.append(f"<tr style='background:{colour[r['change']]}'><td><code>{esc(r['key'])}</code></td>"
                       f"<td>{r['change']}</td><td>{esc(what)}</td><td>{_metric(r['old'], 'max_ulp')}</td>"
                       f"<td>{_metric(r['new'], 'max_ulp')}</td><td>{_metric(r['old'], 'nonfinite_total')}</td>"
                       f"<td>{_metric(r['new'], 'nonfinite_total')}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No cell changed.</p>")
    if d["status_changes"]:
        out.append("<h2>Support changed (re-run here)</h2><ul>")
        for s in d["status_changes"]:
            reason = s["new_reason"] or s["old_reason"]
            out.append(f"<li><code>{esc(s['key'])}</code>: {esc(s['old_status'])} &rarr; {esc(s['new_status'])}"
                       + (f" ({esc(reason)})" if reason else "")
                       + (f"<br>{esc(s['case_side'].upper())}'s worst case: {esc(_case_text(s['case']))}"
                          if s.get("case") else "")
                       + f"<br>{esc(_rerun_text(s.get('rerun')))}</li>")
        out.append("</ul>")
    for what, title in (("new", "New findings"), ("fixed", "Fixed findings"), ("changed", "Changed findings")):
        items = d["findings"][what]
        out.append(f"<h2>{title} ({len(items)})</h2>")
        if not items:
            out.append("<p>None.</p>")
            continue
        out.append("<ul>")
        for it in items:
            out.append(f"<li><code>{esc(it['key'])}</code> {esc(it['id'])} ({esc(_v(it['old_score']))} &rarr; "
                       f"{esc(_v(it['new_score']))})<br>{esc(it['side'].upper())}'s case: {esc(_case_text(it.get('case')))}"
                       f"<br>{esc(_rerun_text(it.get('rerun')))}</li>")
        out.append("</ul>")
    out.append("<h2>Environment differences</h2>")
    ch = d["environment"]["changes"]
    if ch:
        out.append("<table><tr><th>what</th><th>OLD</th><th>NEW</th><th>may explain</th><th>why</th></tr>")
        for e in ch:
            out.append(f"<tr><td>{esc(e['path'])}</td><td>{esc(_v(e['old']))}</td><td>{esc(_v(e['new']))}</td>"
                       f"<td>{e['explains']} cell(s), {e['worse']} worse</td><td>{esc(e['why'])}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>None recorded.</p>")
    for side, title in (("only_old", "Cells only in OLD"), ("only_new", "Cells only in NEW")):
        if d[side]:
            out.append(f"<h2>{title} ({len(d[side])})</h2><ul>")
            for cc in d[side][:200]:
                out.append(f"<li><code>{esc(cc['key'])}</code> ({esc(cc['status'])})</li>")
            out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


__all__ = ["diff_documents", "render_markdown", "render_html", "summary_markdown", "rerun_case", "explain",
           "SCHEMA", "VERSION"]
