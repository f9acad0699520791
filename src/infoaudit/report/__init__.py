"""The error and stability report: results JSON -> Markdown, static HTML and PNG plots.

``render(doc_or_path, out_dir)`` writes ``report.md``, ``report.html`` and ``plots/*.png`` into
``out_dir`` and returns the paths. It reads the results document only (see
:mod:`infoaudit.results.schema`); all data in the HTML is escaped by the template engine.
"""
from __future__ import annotations

import os

__all__ = ["render"]


def render(doc, out_dir, plots=True) -> list:
    from ..results import schema as R
    from . import plots as P
    from .documents import context, html, markdown

    if isinstance(doc, (str, os.PathLike)):
        doc = R.load(doc)
    os.makedirs(out_dir, exist_ok=True)
    made = P.all_plots(doc, out_dir) if plots else {}
    ctx = context(doc, made)
    md_path = os.path.join(out_dir, "report.md")
    html_path = os.path.join(out_dir, "report.html")
    _write(md_path, markdown(ctx))
    _write(html_path, html(ctx))
    return [md_path, html_path] + [os.path.join(out_dir, p) for p in made.values()]


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
