"""report.html in a real browser: headless Chromium (Debian's ``chromium`` package) loads the
report rendered from a small results document, the grade matrix and its legend are in the
rendered DOM, the screenshot is not blank and shows the matrix's grade colours, and the page
logs nothing to the console (the report has no scripts: any console line -- an uncaught
exception, a blocked resource, a CSP complaint -- is an error).

The console check is proven on a negative control: a page with ``console.error`` and an uncaught
ReferenceError must be caught by the same check. Under CI (``CI=true``) a missing chromium is a
failure (.ci/run installs it: ``apt-get install -y --no-install-recommends chromium``); elsewhere
the tests skip with the reason.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser

import pytest

from infoaudit.report import render
from infoaudit.results import schema as R

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("INFOAUDIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
         "--enable-logging=stderr", "--v=0", "--window-size=1400,2000"]
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught ")
TIMEOUT = 120

# the grade colours of report.html.j2 (.g-<grade> background) that the test document's matrix shows
COLOURS = {"unstable": (0xd7, 0x30, 0x27), "conditioned": (0xd9, 0xef, 0x8b), "nonfinite": (0x76, 0x2a, 0x83),
           "correctly_rounded": (0x1a, 0x98, 0x50)}


def chromium():
    """The chromium executable; pytest.fail under CI, pytest.skip elsewhere when it is missing."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    why = (f"headless Chromium not found ({CHROMIUM}); install Debian's package: "
           "apt-get install -y --no-install-recommends chromium")
    if CI:
        pytest.fail(f"CI=true: {why}")
    pytest.skip(why)


def run_chromium(exe, url, tmp_path, *extra):
    """(stdout, stderr) of one headless Chromium run on ``url`` with its own profile folder."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *extra, url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert p.returncode == 0, f"chromium exited {p.returncode}: {p.stderr[-2000:]}"
    return p.stdout, p.stderr


def console_lines(stderr) -> list:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


# ---------------------------------------------------------------- a small results document


def _cell(quantity, backend, variant, dtype, grade, grades, verdict, why, worst=None, **kw):
    c = {"quantity": quantity, "backend": backend, "variant": variant, "dtype": dtype, "device": "cpu",
         "call": f"{backend}.{quantity}", "native": True, "note": "", "status": "ok", "reason": "", "errors": 0,
         "first_error": "", "examples": 12, "elements": sum(grades.values()), "max_ulp": 3.0, "p99_ulp": 1.0,
         "median_ulp": 0.4, "max_rel": 1e-6, "max_abs": 1e-7, "max_score": 0.5, "grade": grade, "grades": grades,
         "verdict": verdict, "profile": "default", "why": why, "unjudged": 0, "failing": 0, "flush_to_zero": "",
         "nonfinite": {}, "nonfinite_total": 0, "invariants": {}, "invariant_total": 0, "search_hits": {},
         "notes": [], "x_label": "|input|", "points": [[1.0, 0.5, 1e-7], [30.0, 2.0, 3e-7]], "worst": worst or {}}
    c.update(kw)
    return c


def _case(z, t, computed, expected, ulp, rel, kappa, grade, why, others=()):
    args = [{"dtype": "float16", "shape": [1, 1], "values": [[z]]}, {"dtype": "float16", "shape": [1, 1], "values": [[t]]}]
    return {"metric": "well_conditioned", "value": rel, "index": [0, 0], "computed": computed, "expected": expected,
            "exact_hi": expected, "exact_lo": 0.0, "ulp": ulp, "rel": rel, "abs": abs(computed - expected),
            "grade": grade, "kappa": kappa, "allow_conditioned": 19.0, "allow_envelope": 19.0, "why": why,
            "class": "", "source": "corpus: test", "recipe": {}, "shrink_steps": 3, "shapes": [[1, 1], [1, 1]],
            "args": args, "others": list(others), "shrunk": None}


def small_document() -> dict:
    bce = "binary_cross_entropy_with_logits"
    why = "2,517 ULP: the conditioning allows 19 ULP, a stable algorithm's envelope 19 ULP -> unstable"
    w = _case(-35.4, 0.0003402, 0.03125, 0.012046, 2517.0, 1.594, 2.0, "unstable", why,
              [{"backend": "scipy", "variant": "log_expit", "device": "cpu", "call": "scipy.special.log_expit form",
                "computed": 0.01204, "ulp": 1.2, "rel": 4e-4, "grade": "faithful"}])
    doc = R.new_document({"profile": "quick", "seed": 0, "backends": ["numpy", "scipy", "torch"],
                          "dtypes": ["float16", "float32"], "quantities": ["softmax", bce],
                          "judge_profile": "default"}, {"python": "3", "cpu": "<b>not bold</b>"})
    cells = [
        _cell("softmax", "numpy", "composed", "float16", "conditioned", {"correctly_rounded": 90, "conditioned": 6},
              "pass", "PASS under default (envelope and better pass): 3 ULP: the conditioning allows 9 ULP -> conditioned"),
        _cell("softmax", "torch", "native", "float16", "correctly_rounded", {"correctly_rounded": 96}, "pass",
              "PASS under default (envelope and better pass): 0.5 ULP -> correctly_rounded"),
        _cell("softmax", "scipy", "native", "float32", "nonfinite", {"correctly_rounded": 90, "nonfinite": 2}, "fail",
              "FAIL under default (envelope and better pass): returned nan where the exact value is 0.5 -> nonfinite",
              nonfinite={"nan": 2}, nonfinite_total=2),
        _cell(bce, "torch", "native", "float16", "unstable", {"correctly_rounded": 40, "unstable": 3}, "fail",
              "FAIL under default (envelope and better pass): " + why, worst={"well_conditioned": w, "grade": w},
              max_ulp=2517.0, max_rel=1.594, failing=3),
        _cell(bce, "scipy", "log_expit", "float16", "faithful", {"correctly_rounded": 40, "faithful": 3}, "pass",
              "PASS under default (envelope and better pass): 0.9 ULP -> faithful"),
    ]
    for c in cells:
        doc["cells"][f"{c['quantity']}|{c['backend']}|{c['variant']}|{c['dtype']}|cpu"] = c
    for q in ("softmax", bce):
        for d in ("float16", "float32"):
            doc["groups"][f"{q}|{d}"] = {"done": True, "seconds": 1.0, "examples": 12, "reference_errors": 0,
                                         "reference_over_budget": 0, "skipped": []}
    doc["seeds_errata"] = {"available": False, "rows": [], "note": "not available: test"}
    doc["status"] = "complete"
    return doc


# ---------------------------------------------------------------- DOM and pixels


class _Dom(HTMLParser):
    """Ids, the grade matrix's cells (class, title) and the images of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.matrix_cells, self.legend_items = set(), [], [], 0
        self._in = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("table", "ul"):
            self._in.append(a.get("id", ""))
        if tag == "td" and self._in and self._in[-1] == "grade-matrix":
            self.matrix_cells.append((a.get("class", ""), a.get("title", "")))
        if tag == "li" and self._in and self._in[-1] == "grade-legend":
            self.legend_items += 1

    def handle_endtag(self, tag):
        if tag in ("table", "ul") and self._in:
            self._in.pop()


def _pixels(png):
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        return im.size, {rgb for _, rgb in im.getcolors(maxcolors=im.size[0] * im.size[1])}


# ---------------------------------------------------------------- the tests


def test_console_check_catches_errors(tmp_path):
    """Negative control: the console check sees console.error and an uncaught exception."""
    exe = chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><p>x</p><script>console.error("boom");'
                   "undefinedFunction();</script></body></html>")
    _, err = run_chromium(exe, bad.as_uri(), tmp_path, "--dump-dom")
    lines = console_lines(err)
    assert any("boom" in x for x in lines) and any("Uncaught ReferenceError" in x for x in lines), err[-3000:]


def test_report_html_in_headless_chromium(tmp_path):
    exe = chromium()
    out = tmp_path / "report"
    render(small_document(), out)
    html_path = out / "report.html"
    url = html_path.as_uri()
    dom, err = run_chromium(exe, url, tmp_path, "--dump-dom")
    assert not console_lines(err), "console output while loading report.html:\n" + "\n".join(console_lines(err))
    d = _Dom()
    d.feed(dom)
    assert {"summary", "ten-worst-table", "grade-matrix", "grade-legend", "findings", "appendix-ulp"} <= d.ids
    assert d.legend_items >= 8   # one per grade (+ n/a and the outline)
    classes = [c for c, _ in d.matrix_cells]
    assert any("g-unstable" in c and "fail" in c for c in classes), classes
    assert any("g-nonfinite" in c for c in classes) and any("g-correctly_rounded" in c for c in classes)
    # numbers on hover: the unstable cell's title holds its ULPs and both allowances
    titles = [t for c, t in d.matrix_cells if "g-unstable" in c]
    assert titles and "2,517 ULP" in titles[0] and "conditioning allows" in titles[0]
    # the executive summary comes before the grade matrix, the raw ULP matrix is an appendix
    assert dom.index('id="summary"') < dom.index('id="grade-matrix"') < dom.index('id="appendix-ulp"')
    assert "scipy.special.log_expit form" in dom and "<b>not bold</b>" not in dom  # escaped data
    for src in d.imgs:  # every image the page loads exists (a missing file logs nothing to the console)
        assert (out / src).is_file(), src
    shot = tmp_path / "shot.png"
    _, err = run_chromium(exe, url, tmp_path, f"--screenshot={shot}")
    assert not console_lines(err), "\n".join(console_lines(err))
    size, colours = _pixels(shot)
    assert size == (1400, 2000)
    assert len(colours) > 50, "the screenshot is blank"
    missing = [g for g, rgb in COLOURS.items() if rgb not in colours]
    assert not missing, f"grade colours not on screen: {missing}"
