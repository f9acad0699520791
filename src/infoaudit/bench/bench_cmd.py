"""``infoaudit bench``: throughput of the backends side by side, FP16 vs FP32 softmax, limits.

``infoaudit bench --reference`` instead prints ns/element of the exact reference per quantity
(fast path, arb, mpmath; :mod:`.reference_speed`).

Writes ``throughput.json`` (first), then ``throughput.md``, ``throughput.html`` and PNG plots
to ``--output`` (default ``reports/``). Progress goes to stderr. Exit 0 when the report was
written (skipped cells are findings, not failures), 2 on a usage error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from . import cells as C

__all__ = ["add_arguments", "build_config", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--quick", action="store_true",
                   help="shapes 64x1000 and 64x50257, short time budget (about a minute)")
    p.add_argument("--output", "-o", default="reports", metavar="DIR", help="report directory (default: reports)")
    p.add_argument("--shape", action="append", default=[], metavar="BxV",
                   help="add a (batch x vocab) shape, e.g. 128x32000 (repeatable)")
    p.add_argument("--no-default-shapes", action="store_true", help="run only the --shape shapes")
    p.add_argument("--backend", action="append", choices=C.BACKENDS, metavar="NAME",
                   help=f"only these backends (repeatable; default all: {', '.join(C.BACKENDS)})")
    p.add_argument("--dtype", action="append", choices=C.DTYPES, metavar="DTYPE",
                   help=f"only these dtypes (repeatable; default all: {', '.join(C.DTYPES)})")
    p.add_argument("--op", action="append", choices=C.OPS, metavar="OP",
                   help=f"only these ops (repeatable; default: {', '.join(C.OPS)})")
    p.add_argument("--device", action="append", metavar="DEV",
                   help="only these devices, e.g. cpu, cuda (repeatable; default: every available device; "
                        "an absent device is reported as skipped with the reason)")
    p.add_argument("--budget", type=float, metavar="S", help="timed seconds per cell (default 0.4; --quick 0.06)")
    p.add_argument("--max-call", type=float, metavar="S",
                   help="a call longer than this gets one timed call; predicted over 2x this: skipped (default 2; --quick 0.15)")
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="wall-time limit of the whole run (default 540; --quick 100): each cell gets a share of "
                        "what is left, and a cell that cannot fit is skipped with that reason")
    p.add_argument("--torch-threads", type=int, metavar="N",
                   help="torch.set_num_threads(N) first (default: torch's choice; on a busy 2-core machine "
                        "1 avoids thread-pool stalls of several ms per call)")
    p.add_argument("--no-prealloc", action="store_true", help="do not time the preallocated-output variants")
    p.add_argument("--errors", metavar="PATH",
                   help="error report JSON (file or directory) for the FP16/FP32 accuracy columns (default: --output)")
    p.add_argument("--seed-batch", type=int, default=16, help="seed memory calculation: batch (default 16)")
    p.add_argument("--seed-seq", type=int, default=1024, help="seed memory calculation: sequence length (default 1024)")
    p.add_argument("--seed-vocab", type=int, default=50_257, help="seed memory calculation: vocabulary (default 50257)")
    p.add_argument("--seed-gpu-mb", type=float, default=40_000, help="seed memory calculation: GPU memory in MB (default 40000)")
    p.add_argument("--seed-budget", type=float, default=0.25, help="seed memory calculation: fraction for logits (default 0.25)")
    p.add_argument("--format", default="md,html,png", help="report formats besides JSON (default md,html,png; '' for JSON only)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    r = p.add_argument_group("exact reference speed (--reference)")
    r.add_argument("--reference", action="store_true",
                   help="print ns/element of the exact reference per quantity instead: the certified fast path "
                        "(reference.evaluate), arb and mpmath side by side, float32 rows of --ref-sizes")
    r.add_argument("--ref-sizes", default="1000,50257", metavar="N,N",
                   help="row lengths (elementwise quantities: elements per row; default 1000,50257)")
    r.add_argument("--ref-quantity", action="append", metavar="NAME", help="only these quantities (repeatable)")
    r.add_argument("--ref-inputs", metavar="KINDS", help="moderate, extreme or both (default moderate,extreme)")
    r.add_argument("--ref-rounds", type=int, default=3, metavar="K", help="fast path: best of K calls (default 3)")
    r.add_argument("--ref-sample", type=int, default=1000, metavar="M",
                   help="arb / mpmath: elements sampled for elementwise quantities (default 1000; rows: the first row)")
    r.add_argument("--ref-full", action="store_true",
                   help="also time arb and mpmath at row lengths above 1,000 (slow: seconds to minutes per row)")
    r.add_argument("--ref-json", metavar="PATH", help="also write the table as JSON")


def build_config(args):
    from .runner import Config

    try:
        extra = [C.parse_shape(s) for s in args.shape]
    except ValueError as e:
        raise SystemExit(_usage(str(e)))
    if args.no_default_shapes and not extra:
        raise SystemExit(_usage("--no-default-shapes needs at least one --shape"))
    base = [] if args.no_default_shapes else list(C.QUICK_SHAPES if args.quick else C.DEFAULT_SHAPES)
    shapes = base + [s for s in extra if s not in base]
    for b, v in shapes:
        if b * v > 400_000_000:
            raise SystemExit(_usage(f"shape {b}x{v}: {b * v:,} elements is more than this tool will allocate (4e8)"))
    seed_args = dict(batch=args.seed_batch, seq=args.seed_seq, vocab=args.seed_vocab, gpu_mb=args.seed_gpu_mb,
                     budget_fraction=args.seed_budget)
    if min(args.seed_batch, args.seed_seq, args.seed_vocab) < 1 or not 0 < args.seed_budget <= 1 or args.seed_gpu_mb <= 0:
        raise SystemExit(_usage("--seed-batch/--seed-seq/--seed-vocab must be >= 1, 0 < --seed-budget <= 1, --seed-gpu-mb > 0"))
    if any(x is not None and x <= 0 for x in (args.budget, args.max_call, args.time_limit, args.torch_threads)):
        raise SystemExit(_usage("--budget, --max-call, --time-limit and --torch-threads must be positive"))
    devices = None
    if args.device:
        devices = []
        for d in args.device:
            for x in d.split(","):
                x = x.strip().lower()
                if x and x not in devices:
                    devices.append(x)
    return Config.preset(
        quick=args.quick, shapes=shapes, dtypes=args.dtype or list(C.DTYPES), backends=args.backend or list(C.BACKENDS),
        ops=args.op or list(C.OPS), devices=devices, budget_s=args.budget, max_call_s=args.max_call,
        time_limit_s=args.time_limit, torch_threads=args.torch_threads,
        prealloc=not args.no_prealloc, seed_args=seed_args, errors_path=args.errors or args.output,
        argv=list(sys.argv[1:]))


def _usage(msg):
    print(f"infoaudit bench: {msg}", file=sys.stderr)
    return 2


def main(args) -> int:
    if getattr(args, "reference", False):
        from . import reference_speed

        return reference_speed.main(args)
    from . import render
    from .runner import Progress, run

    try:
        cfg = build_config(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    bad = [f for f in formats if f not in ("md", "html", "png")]
    if bad:
        return _usage(f"unknown --format {', '.join(bad)} (choose from md, html, png)")
    # JAX on a GPU grabs 75% of its memory at first use, starving PyTorch's cells in the same process
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    t0 = time.perf_counter()
    prog = Progress(quiet=args.quiet)
    prog(f"infoaudit bench ({'quick' if cfg.quick else 'full'}): shapes "
         f"{', '.join(C.shape_str(s) for s in cfg.shapes)}; dtypes {', '.join(cfg.dtypes)}; "
         f"backends {', '.join(cfg.backends)}; output {args.output}")
    result = run(cfg, progress=prog)
    path = render.write_json(result, args.output)
    written = [path] + render.render(result, args.output, formats)
    n = len(result["cells"])
    by = result["summary"]["by_status"]
    nocuda = sum(1 for c in result["cells"] if c["status"] == "skipped" and str(c.get("device")).startswith("cuda"))
    print(f"infoaudit bench: {by.get('ok', 0)} of {n} cells measured; {by.get('skipped', 0)} skipped "
          f"({nocuda} for want of a CUDA device), {by.get('unsupported', 0)} unsupported by the framework "
          f"(reasons in the report); {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for r in result.get("fp16_vs_fp32", []):
        if "speedup_fp16" in r:
            print(f"  softmax fp32/fp16 time ratio {r['backend']:<5} {r['device']:<6} "
                  f"{C.shape_str(r['shape']):>11}: {r['speedup_fp16']:.2f}x", file=sys.stderr)
    for w in written:
        print(w)
    return 0
