"""Throughput report: JSON (written first) -> Markdown, HTML (all data escaped) and PNG plots."""
from __future__ import annotations

import html
import json
import os

from .cells import OPS, shape_str

__all__ = ["DT_ORDER", "write_json", "blocks", "to_markdown", "to_html", "COLORS", "MARKERS", "plots",
           "render"]

DT_ORDER = ("float16", "bfloat16", "float32", "float64")


def write_json(result, outdir) -> str:
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "throughput.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=_jsonable, allow_nan=True)
    os.replace(tmp, path)
    return path


def _jsonable(x):
    try:
        import numpy as np
        if isinstance(x, np.generic):
            return x.item()
    except ImportError:  # pragma: no cover
        pass
    return str(x)


# --- formatting helpers -----------------------------------------------------------------------

def _ms(ns):
    ms = ns / 1e6
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _f(x, fmt="{:.2f}", none="–"):
    return none if x is None else fmt.format(x)


def _pct(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def _la(x):
    return "–" if not x else ", ".join(f"{v:.2f}" for v in x)


def _ok(cells):
    return [c for c in cells if c.get("status") == "ok"]


def _shapes(result):
    return [tuple(s) for s in result["config"]["shapes"]]


# --- the report as a list of (kind, payload) blocks, rendered to Markdown or HTML ----------------

def blocks(result):
    """The report content, format-neutral: ("h1"|"h2"|"h3"|"p"|"table"|"img"|"list", payload)."""
    env = result["environment"]
    b = []
    mode = result.get("mode")
    b.append(("h1", f"infoaudit throughput report ({mode} run)"))
    b.append(("p", f"Created {result['created']}, wall time {result.get('wall_s', 0):.0f} s. Schema "
                   f"{result['schema']} v{result['schema_version']}; the numbers below are in throughput.json."))
    if env.get("warning"):
        b.append(("p", "WARNING: " + env["warning"] + "."))
    b.append(("list", [
        "Time per call: median over timed samples after warm-up (JIT compilation excluded; JAX results "
        "block_until_ready, CUDA synchronised); spread = interquartile range.",
        "GB/s = minimum bytes (inputs read + outputs written in the dtype; labels int64) / median time.",
        "Limit = the best same-shape, same-dtype copy into a preallocated output measured in this run "
        "(numpy.copyto on 1 thread, torch copy_ on all threads). Fraction = op GB/s / limit. An op within "
        "1.5x of the copy time is called memory-bound, else compute-bound by (time / copy time).",
    ]))
    b.append(("h2", "Environment"))
    rows = [["CPU", env.get("cpu_model", "")], ["cores (logical / usable)", f"{env.get('logical_cpus')} / {env.get('usable_cpus')}"],
            ["last-level cache", f"{env.get('last_level_cache_bytes', 0) / 2 ** 20:.0f} MiB"],
            ["threads", ", ".join(f"{k}: {v}" for k, v in env.get("threads", {}).items())],
            ["thread env", ", ".join(f"{k}={v}" for k, v in env.get("thread_env", {}).items()) or "(none set)"],
            ["load average (1, 5, 15 min) start / end",
             f"{_la(env.get('load_average_start'))} / {_la(env.get('load_average_end'))}"],
            ["versions", ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())],
            ["devices", ", ".join(env.get("devices", []))], ["python / platform", f"{env.get('python')} / {env.get('platform')}"]]
    for name, info in env.get("backends", {}).items():
        rows.append([f"backend {name}", (f"{info.get('version')} on {', '.join(info.get('devices', []))}"
                                         if info.get("available") else f"SKIPPED: {info.get('reason')}")])
    b.append(("table", (["", ""], rows)))

    b.append(("h2", "The machine's limits (measured in this run)"))
    lim = result["limits"]
    ref = lim.get("reference", [])
    if ref:
        rows = [[r["device"], r["level"], f"{r['array_bytes'] / 2 ** 20:.3g} MiB", r["impl"], str(r.get("threads") or "–"),
                 f"{r['gbps']:.1f}", f"{r['gbps_p25']:.1f}–{r['gbps_p75']:.1f}"] for r in ref]
        b.append(("h3", "Copy bandwidth by working set (cache and main memory)"))
        b.append(("table", (["device", "level", "array", "copy", "threads", "GB/s", "IQR"], rows)))
    cp = lim.get("copy", [])
    if cp:
        b.append(("h3", "Same-shape copy into a preallocated output (the limit of each cell)"))
        rows = [[r["device"], shape_str(r["shape"]), r["dtype"], f"{r['array_bytes'] / 2 ** 20:.3g} MiB", r["impl"],
                 f"{r['gbps']:.1f}"] for r in cp]
        b.append(("table", (["device", "shape", "dtype", "array", "copy", "GB/s"], rows)))
    ex = [r for r in lim.get("exp", []) if "gelem_per_s" in r]
    if ex:
        b.append(("h3", "Compute limit: elementwise exp, cache-resident (64 Ki elements)"))
        rows = [[r["impl"], r["dtype"], str(r.get("threads")), f"{r['gelem_per_s']:.2f}", f"{1 / r['gelem_per_s']:.2f}"] for r in ex]
        b.append(("table", (["exp", "dtype", "threads", "G elements/s", "ns/element"], rows)))
    hc = lim.get("half_conversion", [])
    if hc:
        b.append(("p", "Rounding float32 to float16 (NumPy): " + "; ".join(
            f"{r['results']} results {r['ns_per_element']:.2f} ns/element" for r in hc) + "."))

    b.append(("h2", "FP16 vs FP32 softmax"))
    b.extend(_fp16_blocks(result))

    b.append(("h2", "Throughput by shape"))
    for shape in _shapes(result):
        b.append(("h3", f"{shape_str(shape)} (batch x vocab)"))
        png = f"throughput_{shape_str(shape)}.png"
        if os.path.exists(os.path.join(result.get("_outdir", ""), png)):
            b.append(("img", (png, f"GB/s per op and backend, {shape_str(shape)}")))
        b.append(("table", _cell_table(result, shape)))
    if os.path.exists(os.path.join(result.get("_outdir", ""), "roofline.png")):
        b.append(("h2", "Achieved bandwidth against the measured limit"))
        b.append(("img", ("roofline.png", "GB/s of every cell against the copy bandwidth of the same working set")))

    b.append(("h2", "Allocation: preallocated outputs"))
    b.append(("p", "Allocation share = (time with a fresh output − time writing into a preallocated one) / time "
                   "with a fresh output. NumPy: the same formula with every temporary preallocated; PyTorch: the "
                   "kernels' out= overloads; SciPy's softmax family and JAX (XLA owns its buffers) have no out=."))
    b.append(("table", _alloc_table(result)))

    b.append(("h2", "Memory-bound or compute-bound"))
    b.extend(_bound_blocks(result))

    b.append(("h2", "The chapter's memory arithmetic"))
    b.extend(_seed_blocks(result))

    sk = [c for c in result["cells"] if c["status"] != "ok"]
    b.append(("h2", f"Skipped and unsupported cells ({len(sk)})"))
    if sk:
        groups = {}
        for c in sk:
            groups.setdefault((c["backend"], c["device"], c["status"], c.get("reason", "")), []).append(c)
        rows = []
        for (bk, dev, st, reason), cs in groups.items():
            what = ", ".join(sorted({f"{c['op']}/{c['dtype']}/{shape_str(c['shape'])}" for c in cs}))
            if len(cs) > 6:
                what = f"{len(cs)} cells ({', '.join(sorted({c['dtype'] for c in cs}))}; {', '.join(sorted({shape_str(c['shape']) for c in cs}))})"
            rows.append([bk, dev, st, what, reason])
        b.append(("table", (["backend", "device", "status", "cells", "reason"], rows)))
    else:
        b.append(("p", "None."))
    return b


def _fp16_blocks(result):
    out = []
    rows = []
    for r in result.get("fp16_vs_fp32", []):
        if "speedup_fp16" not in r:
            continue
        def acc(tag):
            a = r.get(f"{tag}_accuracy")
            return "–" if not a else f"{a['max_ulp']:.2g} ULP"
        rows.append([r["backend"], r["device"], shape_str(r["shape"]), _f(r.get("float32_ms"), "{:.3g}"),
                     _f(r.get("float16_ms"), "{:.3g}"), f"{r['speedup_fp16']:.2f}x", _f(r.get("speedup_bf16"), "{:.2f}x"),
                     acc("float32"), acc("float16"), "yes" if r["agrees_with_2x"] else "no"])
    if not rows:
        return [("p", "No backend ran softmax in both float16 and float32.")]
    out.append(("p", "Speed-up = time(float32) / time(float16) of the same softmax op; the chapter claims "
                     "“nearly 2×” because softmax is memory-bound. Accuracy: max ULP in the dtype "
                     "(from the error report where one was found; otherwise against a float64 softmax of the "
                     "same rounded random inputs, 64-row shapes only)."))
    if os.path.exists(os.path.join(result.get("_outdir", ""), "fp16_vs_fp32.png")):
        out.append(("img", ("fp16_vs_fp32.png", "FP16 speed-up over FP32 per backend and shape")))
    out.append(("table", (["backend", "device", "shape", "fp32 ms", "fp16 ms", "fp16 speed-up", "bf16 speed-up",
                           "fp32 max err", "fp16 max err", "~2x?"], rows)))
    why = [f"{r['backend']} {r['device']} {shape_str(r['shape'])}: {r['why']}" for r in result.get("fp16_vs_fp32", [])
           if "why" in r and (not r.get("agrees_with_2x") or "not for its reason" in r["why"])]
    if why:
        out.append(("p", "Where the measured ratio differs from the chapter's ~2x, and why:"))
        out.append(("list", why))
    return out


def _cell_table(result, shape):
    cells = [c for c in result["cells"] if tuple(c["shape"]) == tuple(shape)]
    rows = []
    order = {o: i for i, o in enumerate(OPS)}
    cells.sort(key=lambda c: (order.get(c["op"], 99), c["backend"], c["device"], DT_ORDER.index(c["dtype"]) if c["dtype"] in DT_ORDER else 9))
    for c in cells:
        if c["status"] == "ok":
            t = c["timing"]
            rows.append([c["op"], c["backend"], c["device"], c["dtype"], _ms(t["median_ns"]),
                         f"±{100 * t['iqr_rel'] / 2:.0f}%", f"{t['samples']}×{t['inner']}",
                         f"{c['elements_per_s'] / 1e9:.3g}", f"{c['gbps']:.2f}", _pct(c.get("fraction_of_limit")),
                         c.get("bound", {}).get("text", "–")])
        else:
            rows.append([c["op"], c["backend"], c["device"], c["dtype"], c["status"], "", "", "", "", "",
                         (c.get("reason") or "")[:120]])
    return (["op", "backend", "device", "dtype", "ms/call", "spread (IQR/2)", "samples", "G elem/s", "GB/s",
             "of limit", "bound"], rows)


def _alloc_table(result):
    rows = []
    seen_na = set()
    for c in _ok(result["cells"]):
        p = c.get("prealloc") or {}
        if p.get("status") == "ok":
            rows.append([c["op"], c["backend"], c["device"], c["dtype"], shape_str(c["shape"]),
                         _ms(c["timing"]["median_ns"]), _ms(p["timing"]["median_ns"]),
                         _pct(p.get("allocation_fraction")), p.get("call", "")])
        elif p.get("status") in ("skipped", "unsupported"):
            rows.append([c["op"], c["backend"], c["device"], c["dtype"], shape_str(c["shape"]),
                         _ms(c["timing"]["median_ns"]), "", p["status"], p.get("reason", "")])
        elif p and (c["backend"], c["op"]) not in seen_na:
            seen_na.add((c["backend"], c["op"]))
            rows.append([c["op"], c["backend"], c["device"], "all", "all", "", "", "n/a", p.get("reason", "")])
    return (["op", "backend", "device", "dtype", "shape", "ms (allocating)", "ms (out=)", "allocation share", "how"], rows)


def _bound_blocks(result):
    ok = _ok(result["cells"])
    if not ok:
        return [("p", "No cell ran.")]
    mem = [c for c in ok if c.get("bound", {}).get("kind") == "memory"]
    out = [("p", f"{len(mem)} of {len(ok)} cells run within 1.5x of the time to copy their bytes (memory-bound); "
                 f"the rest are compute-bound. Per op (largest shape, float32), time / copy time:")]
    shapes = _shapes(result)
    big = max(shapes, key=lambda s: s[0] * s[1]) if shapes else None
    rows = []
    for op in OPS:
        for c in ok:
            if c["op"] == op and tuple(c["shape"]) == tuple(big) and c["dtype"] == "float32":
                bd = c.get("bound", {})
                rows.append([op, c["backend"], c["device"], f"{c['gbps']:.2f}", _f(c.get("limit_gbps"), "{:.1f}"),
                             _f(bd.get("time_over_copy_time"), "{:.1f}x"), bd.get("kind", "–")])
    out.append(("table", (["op", "backend", "device", "GB/s", "copy GB/s", "time / copy time", "bound"], rows)))
    return out


def _seed_blocks(result):
    s = result.get("seed", {})
    m = s.get("memory", {})
    out = []
    if m:
        out.append(("p", f"Logits for batch {m['batch']} × sequence {m['seq']} × vocabulary {m['vocab']:,}: "
                         f"FP32 {m['fp32_gib']:.4g} GiB ({m['fp32_gb_decimal']:.4g} GB), FP16 {m['fp16_gib']:.4g} GiB, "
                         f"saving {m['saving_gib']:.4g} GiB ({m['saving_pct']:.0f}%). With {100 * m['budget_fraction']:.0f}% of "
                         f"{m['gpu_mb']:,} MB ({m['budget_mb']:,.0f} MB): at most {m['max_batch_fp32']} sequences in FP32, "
                         f"{m['max_batch_fp16']} in FP16."))
        if "chapter" in m:
            c = m["chapter"]
            out.append(("p", f"Chapter: FP32 {c['fp32_gb']} GB, FP16 {c['fp16_gb']} GB, saving {c['saving_gb']} GB, "
                             f"FP32 max batch {c['max_batch_fp32']} — reproduced: "
                             f"{'yes' if m.get('agrees_with_chapter') else 'NO'} ({m.get('chapter_note', '')})."))
    rc = s.get("roofline_chapter")
    if rc:
        out.append(("p", f"Chapter's bottleneck analysis, recomputed: {rc['vocab']:,} FP32 softmax outputs move "
                         f"{rc['bytes']:,} B: {rc['memory_us']:.3f} µs at {rc['chapter']['bandwidth_gbps']:.0f} GB/s vs "
                         f"{rc['compute_us']:.6f} µs of arithmetic at 312 TFLOP/s → memory-bound by {rc['factor']:,.0f}× "
                         f"(chapter: {rc['chapter']['factor']:,}×). Note: {rc['note']}."))
    here = [h for h in s.get("roofline_here", []) if h.get("available")]
    if here:
        rows = [[h["label"], f"{h['copy_gbps']:.1f}", f"{h['exp_gelem_per_s']:.2f}", f"{h['memory_us']:.2f}",
                 f"{h['exp_us']:.2f}", f"{h['memory_over_compute']:.2f}", h["bound"], f"{h['fp16_speedup_bound']:.2f}x"]
                for h in here]
        out.append(("p", "The same calculation on this machine (30,000 FP32 elements, measured bandwidth and exp rate); "
                         "the last column is the FP16 speed-up if FP16 only halved the memory part:"))
        out.append(("table", (["assumption", "GB/s", "G exp/s", "memory µs", "exp µs", "memory / compute", "bound",
                               "FP16 bound"], rows)))
    out += _sampled_blocks(s.get("sampled_softmax") or {})
    return out


def _sampled_blocks(sm):
    """The chapter's "sampled softmax ≈ 20× faster" (V = 100,000, K = 5,000), measured."""
    if not sm:
        return []
    cfg = sm.get("config", {})
    out = [("p", f"Sampled vs full softmax cross-entropy (chapter: 100,000 / 5,001 ≈ 20× fewer operations): "
                 f"V = {cfg.get('vocab', 0):,}, K = {cfg.get('k', 0):,}, batch {cfg.get('batch', '?')} rows, "
                 f"{cfg.get('dtype', 'float32')} on {cfg.get('device', 'cpu')}; 'loss' takes the logits as given, "
                 f"'layer' includes the output layer (d = {cfg.get('d', '?')}). Verdict: {sm.get('verdict', '')}.")]
    rows = [[r["backend"], r["setting"], f"{r['full_ms']:.3g}", f"{r['sampled_ms']:.3g}", f"{r['ratio']:.1f}x",
             r["full_call"], r["sampled_call"]] for r in sm.get("rows", []) if r.get("status") == "ok"]
    if rows:
        out.append(("table", (["backend", "setting", "full ms", "sampled ms", "full / sampled", "full", "sampled"],
                              rows)))
    return out


# --- Markdown and HTML ----------------------------------------------------------------------------

def _md_cell(x):
    return str(x).replace("|", "\\|").replace("\n", " ")


def to_markdown(blks) -> str:
    lines = []
    for kind, p in blks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + p, ""]
        elif kind == "p":
            lines += [p, ""]
        elif kind == "list":
            lines += [f"- {x}" for x in p] + [""]
        elif kind == "img":
            lines += [f"![{p[1]}]({p[0]})", ""]
        elif kind == "table":
            head, rows = p
            if not rows:
                lines += ["(none)", ""]
                continue
            lines.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(_md_cell(x) for x in r) + " |" for r in rows]
            lines.append("")
    return "\n".join(lines)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em}")


def to_html(blks, title="infoaudit throughput report") -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body>"]
    for kind, p in blks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{e(p)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(p)}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{e(str(x))}</li>" for x in p) + "</ul>")
        elif kind == "img":
            parts.append(f"<p><img src='{e(p[0], quote=True)}' alt='{e(p[1], quote=True)}'></p>")
        elif kind == "table":
            head, rows = p
            if not rows:
                parts.append("<p>(none)</p>")
                continue
            parts.append("<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr></thead><tbody>")
            parts += ["<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in r) + "</tr>" for r in rows]
            parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- plots ------------------------------------------------------------------------------------------

COLORS = {"numpy": "#4c72b0", "scipy": "#55a868", "torch": "#c44e52", "jax": "#8172b2"}
MARKERS = {"float16": "o", "bfloat16": "s", "float32": "^", "float64": "D"}


def plots(result, outdir) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # pragma: no cover
        result.setdefault("render_notes", []).append(f"no plots: matplotlib unavailable ({e})")
        return []
    files = []
    ok = _ok(result["cells"])
    for shape in _shapes(result):
        cs = [c for c in ok if tuple(c["shape"]) == tuple(shape)]
        if not cs:
            continue
        dts = [d for d in DT_ORDER if any(c["dtype"] == d for c in cs)]
        series = sorted({(c["backend"], c["device"]) for c in cs})
        fig, axes = plt.subplots(len(dts), 1, figsize=(11, 2.6 * len(dts) + 0.6), squeeze=False)
        for ax, dt in zip(axes[:, 0], dts):
            width = 0.8 / max(1, len(series))
            for j, (bk, dev) in enumerate(series):
                xs, ys = [], []
                for i, op in enumerate(OPS):
                    m = [c for c in cs if c["op"] == op and c["dtype"] == dt and c["backend"] == bk and c["device"] == dev]
                    if m:
                        xs.append(i + (j - (len(series) - 1) / 2) * width)
                        ys.append(m[0]["gbps"])
                ax.bar(xs, ys, width, label=f"{bk} ({dev})", color=COLORS.get(bk, None),
                       alpha=1.0 if dev == "cpu" else 0.55)
            lims = [c["limit_gbps"] for c in cs if c["dtype"] == dt and c.get("limit_gbps") and c["device"] == "cpu"]
            if lims:
                ax.axhline(max(lims), color="k", ls="--", lw=1, label="copy limit (cpu)")
            ax.set_yscale("log")
            ax.set_ylabel(f"{dt}\nGB/s")
            ax.set_xticks(range(len(OPS)))
            ax.set_xticklabels([o.replace("binary_cross_entropy_with_logits", "bce_with_logits") for o in OPS],
                               fontsize=8)
        axes[0, 0].set_title(f"Effective bandwidth (minimum bytes / median time), {shape_str(shape)}")
        axes[0, 0].legend(fontsize=7, ncol=6, loc="upper right")
        fig.tight_layout()
        name = f"throughput_{shape_str(shape)}.png"
        fig.savefig(os.path.join(outdir, name), dpi=90)
        plt.close(fig)
        files.append(name)
    if ok:
        fig, ax = plt.subplots(figsize=(9, 5.5))
        # copy bandwidth curve: best copy per working-set size and device
        for dev in sorted({r["device"] for r in result["limits"].get("copy", []) + result["limits"].get("reference", [])}):
            pts = {}
            for r in result["limits"].get("copy", []) + result["limits"].get("reference", []):
                if r["device"] == dev:
                    pts[r["bytes_moved"]] = max(pts.get(r["bytes_moved"], 0), r["gbps"])
            xs = sorted(pts)
            ax.plot(xs, [pts[x] for x in xs], "k-" if dev == "cpu" else "k:", lw=1.5, label=f"copy limit ({dev})")
        for bk in sorted({c["backend"] for c in ok}):
            for dt in DT_ORDER:
                m = [c for c in ok if c["backend"] == bk and c["dtype"] == dt]
                if m:
                    ax.scatter([c["bytes"]["total"] for c in m], [c["gbps"] for c in m], s=18,
                               marker=MARKERS[dt], color=COLORS.get(bk), alpha=0.75, label=f"{bk} {dt}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bytes moved per call (minimum: inputs read + outputs written)")
        ax.set_ylabel("GB/s")
        ax.set_title("Achieved bandwidth vs the measured copy limit (points on the line: memory-bound)")
        ax.legend(fontsize=6, ncol=4)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "roofline.png"), dpi=90)
        plt.close(fig)
        files.append("roofline.png")
    fr = [r for r in result.get("fp16_vs_fp32", []) if "speedup_fp16" in r]
    if fr:
        fig, ax = plt.subplots(figsize=(9, 4))
        labels = [f"{r['backend']}\n{r['device']}\n{shape_str(r['shape'])}" for r in fr]
        ax.bar(range(len(fr)), [r["speedup_fp16"] for r in fr], color=[COLORS.get(r["backend"]) for r in fr])
        ax.axhline(2.0, color="k", ls="--", lw=1, label="chapter's claim (~2x)")
        ax.axhline(1.0, color="gray", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xticks(range(len(fr)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("time(fp32) / time(fp16)")
        ax.set_title("Softmax: FP16 speed-up over FP32 (below 1: FP16 is slower)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "fp16_vs_fp32.png"), dpi=90)
        plt.close(fig)
        files.append("fp16_vs_fp32.png")
    return files


def render(result, outdir, formats=("md", "html", "png")) -> list:
    """Write Markdown/HTML/PNG next to throughput.json; returns the paths written."""
    os.makedirs(outdir, exist_ok=True)
    written = []
    result = dict(result)
    result["_outdir"] = outdir
    if "png" in formats:
        written += [os.path.join(outdir, f) for f in plots(result, outdir)]
    blks = blocks(result)
    if "md" in formats:
        p = os.path.join(outdir, "throughput.md")
        with open(p, "w") as f:
            f.write(to_markdown(blks))
        written.append(p)
    if "html" in formats:
        p = os.path.join(outdir, "throughput.html")
        with open(p, "w") as f:
            f.write(to_html(blks))
        written.append(p)
    return written
