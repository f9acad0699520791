"""``infoaudit gate``: gate a user's own implementation in CI.

    infoaudit gate --impl my_pkg.losses:softmax --quantity softmax --framework torch

Exit codes: 0 every audited dtype passes; 1 a numerical failure (or a hostile implementation:
it raised, hung, returned a non-array / wrong shape / wrong dtype, or mutated its input);
2 a usage or input error (bad --impl, unknown quantity, framework not installed, bad profile).
Output: per dtype a verdict line naming the grade reached (infoaudit.judging) and both allowances
of the deciding element and, for a failure, the shrunk copy-paste reproducer. GitHub Actions annotations when GITHUB_ACTIONS=true; JUnit XML
with --junit-xml; JSON with --json (with the environment fingerprint; reusable as --baseline).
"""
from __future__ import annotations

import json
import os
import sys
import time

from .. import options as O
from ..harness.loading import UsageError, load_impl

__all__ = ["add_arguments", "UsageError", "load_impl", "verdict_line", "grad_line", "render_text",
           "github_annotations", "render_junit", "json_document", "main"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_arguments(parser):
    O.add_to_argparse(parser)
    parser.epilog = ("exit status: 0 pass, 1 numerical failure, 2 usage or input error. "
                     "Options may also be set in pyproject.toml under [tool.infoaudit].")


# ------------------------------------------------------------------ rendering


def _fmt_ulp(v):
    return f"{v:.3g}" if v < 1e5 else f"{v:.2e}"


def _why(text) -> str:
    """The judge's one-line verdict without its leading PASS / FAIL (the line's head says it)."""
    for head in ("PASS ", "FAIL "):
        if text.startswith(head):
            return text[len(head):]
    return text


def verdict_line(rep, r) -> str:
    """One dtype's verdict: the cell's grade, the deciding element with its ULPs, both allowances
    and its grade (the judge's one line), and the counts."""
    head = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP"}[r.verdict]
    if r.verdict == "skipped":
        return f"{head}  {r.dtype:<8} {'; '.join(r.notes)}"
    th = r.thresholds
    rel = f"; relative rule k = {th['relative_k']:g}" if th.get("relative_k") else ""
    grade = f"grade {r.grade}" if r.grade else "no grade"
    return (f"{head}  {rep.quantity} {r.dtype:<8} {r.cases} cases, {r.elements:,} elements, {grade} "
            f"{_why(r.why)}; max {_fmt_ulp(r.max_ulp)} ULP; non-finite {r.nonfinite_total} "
            f"(limit {th.get('nonfinite', 0)}){rel}  [{r.seconds:.1f} s]")


def grad_line(rep, r) -> str:
    """The verdict line of one dtype's gradient audit (--grad): its grade, the deciding component
    with both allowances, and the counts."""
    g = r.grad
    head = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP"}[g["verdict"]]
    if g["verdict"] == "skipped":
        return f"{head}  {rep.quantity} {r.dtype:<8} grad  " + "; ".join(g.get("notes", []))
    th = g.get("thresholds", {})
    grade = f"grade {g['grade']}" if g.get("grade") else "no grade"
    return (f"{head}  {rep.quantity} {r.dtype:<8} grad  {g['cases']} cases, {g['components']:,} gradient components "
            f"({g.get('how') or 'autodiff'}), {grade} {_why(g.get('why', ''))}; non-finite {g['nonfinite_total']} "
            f"(limit {th.get('grad_nonfinite', 0)}); flushed {g['flushed_bad']} (limit {th.get('grad_flushed', 0)})  "
            f"[{g['seconds']:.1f} s]")


def _failure_lines(f, what="") -> list:
    lines = [f"      {what}{_kind_text(f['kind'])}: {f['message']}"]
    if f.get("label"):
        lines.append(f"      found by: {f['label']}")
    if f.get("reproducer"):
        lines.append("      reproducer (shrunk; copy-paste):")
        lines += ["        " + ln for ln in f["reproducer"].splitlines()]
    return lines


def render_text(rep, verbose=False) -> str:
    lines = [f"infoaudit gate: {rep.quantity} -- impl {rep.impl}, framework {rep.framework} ({rep.device}), "
             f"profile {rep.profile}, seed {rep.seed}, {rep.examples} examples per dtype after the fixed corpus"]
    for r in rep.results:
        lines.append(verdict_line(rep, r))
        for n in r.notes:
            lines.append(f"      note: {n}")
        if r.failure:
            lines += _failure_lines(r.failure)
        if getattr(r, "grad", None):
            lines.append(grad_line(rep, r))
            for n in r.grad.get("notes", []):
                lines.append(f"      note: {n}")
            if r.grad.get("failure"):
                lines += _failure_lines(r.grad["failure"], "gradient: ")
    if verbose:
        for r in rep.results[:1]:
            lines.append("settings (" + rep.profile + "):")
            for m, why in r.thresholds.get("reasons", {}).items():
                lines.append(f"      {m} = {r.thresholds.get(m)!r}: {why}")
    ok = rep.passed
    nfail = sum(r.verdict == "fail" or bool(getattr(r, "grad_failed", False)) for r in rep.results)
    lines.append("result: " + ("PASS" if ok else f"FAIL ({nfail} of {len(rep.results)} dtype(s) failed)")
                 + f" -> exit {rep.exit_code}")
    return "\n".join(lines)


def _kind_text(kind):
    return {"numerical": "numerical failure", "raised": "implementation raised", "timeout": "implementation hung",
            "not_array": "not an array", "wrong_shape": "wrong shape", "wrong_dtype": "wrong dtype",
            "mutated": "mutated its input", "unreadable": "unreadable result",
            "unsupported": "inputs could not be built", "no_cases": "nothing ran",
            "not_differentiable": "not differentiable"}.get(kind, kind)


def _gh_escape(s):
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s):
    return _gh_escape(s).replace(":", "%3A").replace(",", "%2C")


def github_annotations(rep) -> str:
    """Workflow commands (::error / ::notice) for GitHub Actions."""
    out = []
    loc = ""
    if rep.source:
        path, line = rep.source
        try:
            path = os.path.relpath(path, os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
        except ValueError:
            pass
        loc = f"file={_gh_prop(path)},line={line},"
    for r in rep.results:
        title = _gh_prop(f"infoaudit gate: {rep.quantity} {r.dtype} ({rep.framework})")
        if r.verdict == "fail":
            f = r.failure or {}
            body = f"{_kind_text(f.get('kind', ''))}: {f.get('message', '')}\n\n{f.get('reproducer', '')}"
            out.append(f"::error {loc}title={title}::{_gh_escape(body)}")
        for n in r.notes:
            if "flush" in n:
                out.append(f"::notice title={title}::{_gh_escape(n)}")
        if getattr(r, "grad_failed", False):
            f = r.grad.get("failure") or {}
            gt = _gh_prop(f"infoaudit gate --grad: {rep.quantity} {r.dtype} ({rep.framework})")
            body = f"gradient {_kind_text(f.get('kind', ''))}: {f.get('message', '')}\n\n{f.get('reproducer', '')}"
            out.append(f"::error {loc}title={gt}::{_gh_escape(body)}")
    return "\n".join(out)


def render_junit(rep) -> str:
    import xml.etree.ElementTree as ET

    grads = [r for r in rep.results if getattr(r, "grad", None)]
    suite = ET.Element("testsuite", name="infoaudit.gate", tests=str(len(rep.results) + len(grads)),
                       failures=str(sum(r.verdict == "fail" for r in rep.results)
                                    + sum(r.grad["verdict"] == "fail" for r in grads)), errors="0",
                       skipped=str(sum(r.verdict == "skipped" for r in rep.results)
                                   + sum(r.grad["verdict"] == "skipped" for r in grads)),
                       time=f"{sum(r.seconds for r in rep.results):.3f}")
    props = ET.SubElement(suite, "properties")
    for k in ("quantity", "impl", "framework", "device", "profile", "seed", "examples"):
        ET.SubElement(props, "property", name=k, value=str(getattr(rep, k)))
    for r in rep.results:
        tc = ET.SubElement(suite, "testcase", classname=f"infoaudit.gate.{rep.quantity}",
                           name=f"{rep.impl}[{r.dtype}]", time=f"{r.seconds:.3f}")
        if r.verdict == "fail":
            f = r.failure or {}
            el = ET.SubElement(tc, "failure", message=f"{_kind_text(f.get('kind', ''))}: {f.get('message', '')}"[:2000],
                               type=f.get("kind", "failure"))
            el.text = verdict_line(rep, r) + "\n\n" + f.get("reproducer", "")
        elif r.verdict == "skipped":
            ET.SubElement(tc, "skipped", message="; ".join(r.notes))
        out = ET.SubElement(tc, "system-out")
        out.text = verdict_line(rep, r) + ("\n" + "\n".join(r.notes) if r.notes else "")
        g = getattr(r, "grad", None)
        if g:
            tc = ET.SubElement(suite, "testcase", classname=f"infoaudit.gate.{rep.quantity}.grad",
                               name=f"{rep.impl}[{r.dtype}, grad]", time=f"{g.get('seconds', 0.0):.3f}")
            if g["verdict"] == "fail":
                f = g.get("failure") or {}
                el = ET.SubElement(tc, "failure", type=f.get("kind", "failure"),
                                   message=f"gradient {_kind_text(f.get('kind', ''))}: {f.get('message', '')}"[:2000])
                el.text = grad_line(rep, r) + "\n\n" + f.get("reproducer", "")
            elif g["verdict"] == "skipped":
                ET.SubElement(tc, "skipped", message="; ".join(g.get("notes", [])))
            out = ET.SubElement(tc, "system-out")
            out.text = grad_line(rep, r) + ("\n" + "\n".join(g.get("notes", [])) if g.get("notes") else "")
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def json_document(rep) -> dict:
    """The ``--json`` document: the report plus the environment fingerprint (versions, CPU flags,
    device, FTZ/DAZ as probed after the gate ran, TF32 / matmul precision, threads)."""
    from ..results.fingerprint import fingerprint

    d = rep.as_dict()
    try:
        d["fingerprint"] = fingerprint(frameworks=tuple(sorted({"numpy", rep.framework})))
    except Exception as e:  # noqa: BLE001 - the fingerprint must never cost the gate its verdict
        d["fingerprint"] = {"error": f"{type(e).__name__}: {e}"}
    return d


def _write(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ------------------------------------------------------------------ main


def _usage(msg) -> int:
    print(f"infoaudit gate: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def main(args) -> int:
    from ..harness.frameworks import GateUsageError
    from ..harness.timeout import install_watchdog
    from .core import run_gate

    try:
        cfg = O.tool_config()
    except ValueError as e:
        return _usage(str(e))
    explicit = {o.dest: getattr(args, o.dest, None) for o in O.OPTIONS}
    try:
        opts = O.resolve(explicit, cfg)
    except ValueError as e:
        return _usage(str(e))
    try:
        fn = load_impl(opts["impl"])
    except UsageError as e:
        return _usage(str(e))
    from .. import quantities as Q
    try:
        Q.get(opts["quantity"])
    except Q.InputError as e:
        return _usage(str(e))

    def on_hang():  # the watchdog's last word when native code ignores SIGALRM
        print(f"FAIL  {opts['quantity']}: the implementation {opts['impl']} did not return within "
              f"{opts['timeout']:g} s and could not be interrupted (stuck in native code); the gate stops here "
              "-> exit 1", flush=True)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::error title=infoaudit gate: {opts['quantity']}::implementation hung in native code", flush=True)

    install_watchdog(on_hang)
    t0 = time.perf_counter()
    modname, _, attr = opts["impl"].partition(":")
    try:
        rep = run_gate(fn, opts["quantity"], opts["framework"], dtypes=opts["dtype"], device=opts["device"],
                         profile=opts["profile"], examples=opts["examples"], seed=opts["seed"],
                         timeout=opts["timeout"], relative=opts["relative"], baseline=opts["baseline"],
                         flush_to_zero=opts["flush_to_zero"], impl_name=opts["impl"],
                         impl_import=(f"from {modname} import {attr.split('.')[0]}" if "." not in attr
                                      else f"from {modname} import {attr.split('.')[0]}"),
                         fn_name=attr, user_profiles=opts["profiles_config"], grad=opts["grad"],
                         compile=opts["compile"], autocast=opts["autocast"], relative_to=opts["relative_to"])
    except GateUsageError as e:
        return _usage(str(e))
    print(render_text(rep))
    print(f"(gate time {time.perf_counter() - t0:.1f} s)")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        ann = github_annotations(rep)
        if ann:
            print(ann)
    try:
        if opts["junit_xml"]:
            _write(opts["junit_xml"], render_junit(rep))
        if opts["json"]:
            _write(opts["json"], json.dumps(json_document(rep), indent=2, default=str))
    except OSError as e:
        print(f"infoaudit gate: error: cannot write report: {e}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.flush()
    return rep.exit_code
