"""PNG plots of a results document (matplotlib, Agg backend; data from the JSON only)."""
from __future__ import annotations

import math
import os

from . import model as M

COLORS = {"numpy": "#1f77b4", "scipy": "#2ca02c", "torch": "#d62728", "jax": "#9467bd"}
DPI = 80


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _color(backend, i=0):
    return COLORS.get(backend.split("-")[0], f"C{(i + 4) % 10}")


def summary_matrix(doc, path, metric="max_ulp"):
    """Heat map (the report's appendix): quantity rows x (backend, dtype) columns, coloured by
    log10(max ULP) (gradient columns: ``metric="max_cae"`` for the condition-aware error); NF marked."""
    plt = _plt()
    import numpy as np

    mat = M.matrix(doc)
    qs = M.quantities_of(doc)
    cols = M.columns(doc)
    data = np.full((len(qs), len(cols)), np.nan)
    for i, q in enumerate(qs):
        for j, (b, d, k) in enumerate(cols):
            e = mat.get((q, b, d, k))
            if e and e["status"] == "ok" and e[metric] is not None:
                data[i, j] = math.log10(max(e[metric], 0.1))
    fig, ax = plt.subplots(figsize=(2 + 0.55 * len(cols), 1.2 + 0.32 * len(qs)))
    cmap = plt.get_cmap("RdYlGn_r").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=-1, vmax=8, aspect="auto")
    for i, q in enumerate(qs):
        for j, (b, d, k) in enumerate(cols):
            e = mat.get((q, b, d, k))
            if not e or e["status"] != "ok":
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="#666")
                continue
            txt = M.fmt_num(e[metric], 2)
            if e["nonfinite"]:
                txt = "NF\n" + txt
            ax.text(j, i, txt, ha="center", va="center", fontsize=5.5,
                    color="black", fontweight="bold" if e["nonfinite"] else "normal")
    ax.set_yticks(range(len(qs)))
    ax.set_yticklabels(qs, fontsize=7)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([M.column_label(b, d, k).replace(" ", "\n", 1) for b, d, k in cols], fontsize=6.5)
    ax.xaxis.tick_top()
    for j in range(1, len(cols)):
        if cols[j][:1] != cols[j - 1][:1] or cols[j][2] != cols[j - 1][2]:
            ax.axvline(j - 0.5, color="white" if cols[j][2] == cols[j - 1][2] else "black", lw=2)
    cb = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    what = "max ULP error" if metric == "max_ulp" else "max condition-aware error"
    cb.set_label(f"log10({what}), worst variant", fontsize=7)
    ax.set_title(f"{what} per quantity x backend x dtype; 'grad' columns: gradients through autodiff "
                 "(NF: non-finite mismatch found)", fontsize=9, pad=28)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def error_vs_magnitude(doc, quantity, path):
    """Per dtype panel: ULP error of sampled elements against the input magnitude, one colour per backend."""
    plt = _plt()
    rows = M.quantity_rows(doc, quantity)
    ds = [d for d in M.DTYPE_ORDER if any(c["dtype"] == d for c in rows)]
    if not ds:
        return None
    fig, axes = plt.subplots(1, len(ds), figsize=(3.2 * len(ds), 2.9), squeeze=False)
    xlabel = next((c.get("x_label") for c in rows if c.get("x_label")), "input magnitude")
    any_pts = False
    for ax, d in zip(axes[0], ds):
        seen = set()
        for i, c in enumerate(r for r in rows if r["dtype"] == d and r["status"] == "ok"):
            pts = [(M.f(x), M.f(u)) for x, u, _ in c.get("points", [])]
            pts = [(x, u) for x, u in pts if x is not None and u is not None and math.isfinite(u) and x > 0]
            if not pts:
                continue
            any_pts = True
            lab = c["backend"] if c["backend"] not in seen else None
            seen.add(c["backend"])
            pts = [(x, u) for x, u in pts if math.isfinite(x)]
            if not pts:
                continue
            xs = [math.log10(max(x, 5e-324)) for x, _ in pts]
            ys = [math.log10(max(u, 1e-3)) for _, u in pts]
            ax.scatter(xs, ys, s=6, alpha=0.45, color=_color(c["backend"], i), label=lab,
                       marker="o" if c["variant"] in ("native", "composed", "jit") else "x", linewidths=0.6)
        # log10 axes computed here (magnitudes span 1e-324 .. 1e308, beyond matplotlib's log ticker)
        ax.axhline(math.log10(0.5), color="#888", lw=0.6, ls="--")
        ax.set_title(d, fontsize=9)
        ax.set_xlabel(f"log10({xlabel})", fontsize=7)
        ax.tick_params(labelsize=6)
        if ax is axes[0][0]:
            ax.set_ylabel("log10(ULP error); dashed: 0.5 ULP", fontsize=7)
        if seen:
            ax.legend(fontsize=6, loc="upper left")
    if not any_pts:
        plt.close(fig)
        return None
    fig.suptitle(f"{quantity}: error vs input magnitude (sampled elements; x marks non-primary variants)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def softmax_panel(doc, path):
    """Max ULP error of softmax vs vocabulary size, per backend, one panel per dtype (scale 4 inputs)."""
    plt = _plt()
    pr = M.panel_rows(doc)
    if not pr:
        return None
    p, table = pr["panel"], pr["table"]
    ds = [d for d in M.DTYPE_ORDER if any(k[2] == d for k in table)]
    scale = max(p.get("scales") or [1.0])
    fig, axes = plt.subplots(1, len(ds), figsize=(3.2 * len(ds), 2.9), squeeze=False, sharey=False)
    for ax, d in zip(axes[0], ds):
        for i, ((b, v, dd, sc), by_n) in enumerate(sorted(table.items())):
            if dd != d or sc != scale:
                continue
            ns = sorted(by_n)
            ys = [max(M.f(by_n[n]["max_ulp"]) or 0.0, 1e-2) for n in ns]
            ax.plot(ns, ys, marker="o", ms=3, lw=1, color=_color(b, i), label=f"{b}/{v}",
                    ls="-" if v in ("native", "composed", "jit") else ":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(0.5, color="#888", lw=0.6, ls="--")
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("vocabulary size n", fontsize=7)
        ax.tick_params(labelsize=6)
        if ax is axes[0][0]:
            ax.set_ylabel("max ULP error over the rows", fontsize=7)
        ax.legend(fontsize=5.5)
    fig.suptitle(f"softmax: error growth with vocabulary size, same logits in every dtype (N(0, {scale:g}^2))",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def all_plots(doc, out_dir) -> dict:
    """Write every plot under out_dir/plots; returns {name: relative path}."""
    import numpy as np

    with np.errstate(all="ignore"):
        return _all_plots(doc, out_dir)


def _all_plots(doc, out_dir) -> dict:
    pdir = os.path.join(out_dir, "plots")
    os.makedirs(pdir, exist_ok=True)
    made = {}
    if doc["cells"]:
        made["summary"] = summary_matrix(doc, os.path.join(pdir, "summary_matrix.png"))
    sp = softmax_panel(doc, os.path.join(pdir, "softmax_precision.png"))
    if sp:
        made["softmax_precision"] = sp
    for q in M.quantities_of(doc):
        try:
            p = error_vs_magnitude(doc, q, os.path.join(pdir, f"error_{q}.png"))
        except Exception as e:  # noqa: BLE001 - one unplottable panel must not lose the report
            import sys

            print(f"infoaudit report: plot for {q} failed: {type(e).__name__}: {e}", file=sys.stderr)
            _plt().close("all")
            p = None
        if p:
            made[f"error_{q}"] = p
    return {k: os.path.relpath(v, out_dir) for k, v in made.items() if v}


__all__ = ["all_plots", "summary_matrix", "error_vs_magnitude", "softmax_panel"]
