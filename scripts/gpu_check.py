#!/usr/bin/env python3
"""GPU differential check: every quantity x torch variant x dtype on device="cuda" (and JAX on
"gpu" when its GPU platform is present), on the fixed moderate and extreme inputs of the CPU tests
(tests/known_findings.py), against the exact reference, side by side with the same op on CPU.

Run from the repository root (no install needed):   python3 scripts/gpu_check.py
Prints a compact table (max ULP over finite elements, non-finite mismatch counts, problems that
the CPU findings table does not explain) and writes $OUT/gpu_check.json when OUT is set.
Exits 0 whether or not CUDA is present (an absent device is reported as skipped with its reason).
Budget: well under 3 minutes (reference ~5 s; each op ~1 ms on the GPU; JAX compiles dominate).
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "tests")]

DTYPES = ("float16", "bfloat16", "float32", "float64")
DEADLINE_S = 170.0


def _summ(cmp):
    s = cmp.errors.summary()
    return {"max_ulp": round(s["max_ulp"], 3), "p99_ulp": round(s["p99_ulp"], 3),
            "nonfinite": s["nonfinite_total"], "nonfinite_classes": s["nonfinite"]}


def run_backend(backend, device, K, t0, rows, out):
    from infoaudit.backends import load
    from infoaudit.differential import Unsupported, compare
    from infoaudit.quantities import REGISTRY

    mod = load(backend)
    for qname in REGISTRY:
        for op in mod.ops().get(qname, []):
            for dtype in DTYPES:
                if time.time() - t0 > DEADLINE_S:
                    out["truncated"] = f"stopped at {backend}:{qname}:{op.variant}:{dtype} (time budget)"
                    return
                rec = {"backend": backend, "device": device, "quantity": qname, "variant": op.variant,
                       "dtype": dtype, "cases": {}}
                for case in K.CASES:
                    args, labels, inputs, exact, tol = K.prepared(qname, case, dtype)
                    entry = {}
                    for dev in (device, "cpu"):
                        try:
                            c = compare(qname, mod, *args, dtype=dtype, variant=op.variant, device=dev, exact=exact)
                        except Unsupported as e:
                            entry[dev] = {"unsupported": str(e)[:300]}
                            continue
                        except Exception as e:  # noqa: BLE001 - report, never crash the check
                            entry[dev] = {"error": f"{type(e).__name__}: {e}"[:300]}
                            continue
                        d = _summ(c)
                        # problems the findings table does not explain for this device (a finding
                        # that "no longer reproduces" means the device behaves differently)
                        d["problems"] = K.check(c, labels, K.findings_for(qname, backend, op.variant, dtype,
                                                                           case, dev), tol)
                        d["returned_dtype"] = c.returned_dtype
                        entry[dev] = d
                    rec["cases"][case] = entry
                rows.append(rec)


def fmt_row(r, device):
    cells = []
    nprob = 0
    for case in ("moderate", "extreme"):
        e = r["cases"].get(case, {})
        g, c = e.get(device, {}), e.get("cpu", {})
        if "max_ulp" in g:
            cells.append(f"{g['max_ulp']:>10.3g} {g['nonfinite']:>3d} {c.get('max_ulp', float('nan')):>10.3g}")
            nprob += len(g["problems"])
        else:
            cells.append(f"{('UNSUP' if 'unsupported' in g else 'ERROR'):>10} {'':>3} {'':>10}")
    return (f"{r['backend']:<5} {r['quantity']:<32} {r['variant']:<13} {r['dtype']:<8} "
            + " | ".join(cells) + f" | {nprob}")


def main():
    t0 = time.time()
    out = {"rows": [], "skipped": [], "versions": {}}
    import numpy as np

    import known_findings as K  # noqa: E402

    out["versions"]["numpy"] = np.__version__
    targets = []
    try:
        import torch
        out["versions"]["torch"] = torch.__version__
        if torch.cuda.is_available():
            out["versions"]["cuda_device"] = torch.cuda.get_device_name(0)
            targets.append(("torch", "cuda"))
        else:
            out["skipped"].append(f"torch cuda: torch.cuda.is_available() is False (torch {torch.__version__})")
    except Exception as e:  # noqa: BLE001
        out["skipped"].append(f"torch: not importable ({type(e).__name__}: {e})")
    try:
        import jax
        out["versions"]["jax"] = jax.__version__
        try:
            gpus = jax.devices("gpu")
        except RuntimeError as e:
            gpus = []
            out["skipped"].append(f"jax gpu: {e}")
        if gpus:
            out["versions"]["jax_device"] = str(gpus[0])
            targets.append(("jax", "gpu"))
    except Exception as e:  # noqa: BLE001
        out["skipped"].append(f"jax: not importable ({type(e).__name__}: {e})")

    for backend, device in targets:
        try:
            run_backend(backend, device, K, t0, out["rows"], out)
        except Exception as e:  # noqa: BLE001
            out["skipped"].append(f"{backend} {device}: aborted: {type(e).__name__}: {e}")
            traceback.print_exc()

    hdr = (f"{'bknd':<5} {'quantity':<32} {'variant':<13} {'dtype':<8} "
           f"{'mod ulp':>10} {'nf':>3} {'cpu ulp':>10} | {'ext ulp':>10} {'nf':>3} {'cpu ulp':>10} | new")
    print(hdr)
    for r in out["rows"]:
        print(fmt_row(r, r["device"]))
    new = [(r, case, p) for r in out["rows"] for case, e in r["cases"].items()
           for p in e.get(r["device"], {}).get("problems", [])]
    diff = [(r, case) for r in out["rows"] for case, e in r["cases"].items()
            if e.get(r["device"], {}).get("max_ulp") != e.get("cpu", {}).get("max_ulp")]
    print(f"\n{len(out['rows'])} rows; {len(new)} device problems not in the findings table; "
          f"{len(diff)} (row, case) with a max ULP different from CPU")
    for r, case, p in new[:60]:
        print(f"  [{r['device']}] {case}: {p[:260]}")
    for s in out["skipped"]:
        print("skipped:", s)
    if out.get("truncated"):
        print("truncated:", out["truncated"])
    out["elapsed_s"] = round(time.time() - t0, 1)
    print(f"elapsed {out['elapsed_s']} s")
    dest = os.environ.get("OUT")
    if dest:
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, "gpu_check.json"), "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
