"""The results document of ``infoaudit run``: a versioned JSON schema, written incrementally and atomically.

Layout (``schema = "infoaudit.results"``, ``version = 1``)::

    {
      "schema": "infoaudit.results", "version": 1,
      "status": "running" | "complete" | "interrupted",
      "config": {"profile", "seed", "backends", "dtypes", "quantities", "settings"},
      "environment": {"python", "platform", "cpu", "cores", "packages": {...}, "backends": [...],
                      "fingerprint": {...}  (infoaudit.results.fingerprint),
                      "fingerprint_after": {...}  (fp_state() in a pool worker after the groups)},
      "started", "updated" (ISO 8601 UTC), "elapsed_s",
      "groups": {"<quantity>|<dtype>": {"done": true, "seconds", "examples", "reference_errors",
                                         "reference_over_budget", "skipped"}},
      "cells": {"<quantity>|<backend>|<variant>|<dtype>|<device>": {
          quantity, backend, variant, dtype, device, call, native, note, status, reason,
          examples, elements, max_ulp, p99_ulp, median_ulp, max_rel, max_abs, max_score,
          grade, grades: {grade: elements}, verdict: "pass" | "fail" | null, profile, why, unjudged, failing,
          flush_to_zero, nonfinite: {class: count}, nonfinite_total, invariants: {rule: count}, invariant_total,
          notes, x_label, points: [[magnitude, ulp, rel], ...],
          worst: {metric: {metric, value, args, index, computed, expected, exact_hi, exact_lo, ulp, rel,
                           abs, grade, kappa, allow_conditioned, allow_envelope, why, class, source, recipe,
                           shrink_steps, others: [...], shrunk: {... same}}}}},
      "panels": {"softmax_precision": {...}},
      "seeds_errata": {"available": bool, "rows": [...], "note": str},
      "condition_examples": [{name, algorithm, computed, exact, ulp, rel, sensitivity, kappa, cae, verdict}]
    }

The judging fields come from the one judge (:mod:`infoaudit.judging`, docs/grades.md): ``grades``
counts the elements per grade (``correctly_rounded``, ``faithful``, ``flushed``, ``conditioned``,
``envelope``, ``unstable``, ``invariant``, ``nonfinite``) among those the judging ``profile``
(``default`` or ``strict``, ``infoaudit run --judge-profile``) judges (``unjudged``: the others);
``grade`` is the worst of them, ``verdict`` "fail" when any judged element's grade does not pass
the profile (``failing`` counts them; a user's implementation that raised or returned the wrong
shape or dtype also fails), null for a backend cell that did not run; ``why`` is the one line
naming the deciding element's ULPs, both allowances and grade; ``max_score`` the largest error
over the element's larger allowance. Worst cases per metric (``grade``: the worst element by grade
and error over its allowance; ``well_conditioned``: the largest relative error beyond the
conditioning at condition number kappa <= 64; ``ulp``; ``rel``; ``nonfinite``; ``invariant``)
carry the element's ``grade``, ``kappa`` (N / |y*|), both allowances in ULPs and the judge's
``why``; findings (all but ``ulp`` / ``rel``) carry ``others``: the other cells of the group on
the same input (``backend``, ``variant``, ``device``, ``call``, ``computed``, ``ulp``, ``rel``,
``grade``).

Gradient cells (``infoaudit.run.gradients``) sit in the same ``cells`` map under
``"<quantity>|<backend>|<variant>|<dtype>|<device>|grad"`` with ``"kind": "grad"``, their groups
under ``"<quantity>|<dtype>|grad"``; besides the forward fields they carry ``how`` (the autodiff
call), ``max_cae``, ``p99_cae``, ``cae_elements``, ``flushed``, ``boundary``, ``args`` (per
argument: max_ulp, max_cae, flushed, nonfinite), ``skipped_args`` and worst cases per metric
(``nonfinite``, ``flushed``, ``grade``, ``cae``, ``ulp``) holding ``arg``, ``cotangent``, ``cae``,
``kappa``, ``grade`` and ``why`` (no ``points``), and the same judging fields (``grade``, ``grades``,
``verdict``, ``profile``, ``why``) with N from the exact second derivatives and S from the
closed-form VJP's terms. Forward cells have no ``kind`` (or ``"value"``).

Arrays are ``{"dtype", "shape", "values"}`` with nested lists of numbers; non-finite numbers are
the strings ``"inf"``, ``"-inf"``, ``"nan"`` (strict JSON). Floats are written with ``repr`` (they
round-trip exactly). Every update rewrites the file through a temporary file and
``os.replace``: an interrupted run keeps every finished group, and ``--resume`` skips them.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import tempfile

import numpy as np

SCHEMA = "infoaudit.results"
VERSION = 1
MAX_STORED_SHRUNK = 65_536
MAX_STORED_ELEMENTS = 256  # original (unshrunk) worst inputs larger than this keep only shapes + recipe


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def num(x):
    """A JSON-safe number: finite floats as floats, non-finite as strings."""
    if x is None:
        return None
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def unnum(x):
    if isinstance(x, str):
        return float(x)
    return x


def encode_array(a) -> dict:
    a = np.asarray(a)
    from ..dtypes import dtype_name

    if a.dtype.kind in "iu":
        return {"dtype": "int64", "shape": list(a.shape), "values": a.astype(np.int64).tolist()}
    f = a.astype(np.float64)
    vals = np.vectorize(num, otypes=[object])(f).tolist() if f.size else []
    return {"dtype": dtype_name(a.dtype), "shape": list(a.shape), "values": vals}


def decode_array(d) -> np.ndarray:
    from ..dtypes import cast

    if d["dtype"] == "int64":
        return np.asarray(d["values"], dtype=np.int64).reshape(d["shape"])
    def conv(v):
        return [conv(x) for x in v] if isinstance(v, list) else unnum(v)
    f = np.asarray(conv(d["values"]), dtype=np.float64).reshape(d["shape"])
    return cast(f, d["dtype"])


def encode_args(args) -> list:
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(encode_array(a))
        else:
            out.append(num(a))
    return out


def decode_args(enc) -> tuple:
    return tuple(decode_array(a) if isinstance(a, dict) else unnum(a) for a in enc)


def worst_dict(w, encode=True, limit=None) -> dict:
    """JSON-able dict of a runner Worst; arguments over ``limit`` elements are left out (shrunk
    reproducers are always kept up to MAX_STORED_SHRUNK elements)."""
    limit = MAX_STORED_ELEMENTS if limit is None else limit
    if w is None:
        return None
    size = sum(np.size(a) for a in w.args if isinstance(a, np.ndarray))
    d = {
        "metric": w.metric, "value": num(w.value), "index": list(w.index),
        "computed": num(w.computed), "expected": num(w.expected), "exact_hi": num(w.exact_hi),
        "exact_lo": num(w.exact_lo), "ulp": num(w.ulp), "rel": num(w.rel), "abs": num(w.abs),
        "grade": w.grade, "kappa": num(w.kappa), "allow_conditioned": num(w.allow_conditioned),
        "allow_envelope": num(w.allow_envelope), "why": w.why,
        "class": w.klass, "source": w.source, "recipe": jsonable(w.recipe), "shrink_steps": w.shrink_steps,
        "shapes": [list(a.shape) for a in w.args if isinstance(a, np.ndarray)],
    }
    if w.others:
        d["others"] = jsonable(w.others)
    if encode:
        d["args"] = encode_args(w.args) if size <= limit else None
    else:
        d["args"] = w.args
    d["shrunk"] = worst_dict(w.shrunk, encode, MAX_STORED_SHRUNK) if w.shrunk is not None else None
    return d


def jsonable(x):
    """``x`` with JSON-safe numbers (non-finite as strings), lists for tuples, str keys, arrays as
    :func:`encode_array` (read back with :func:`decode_array`): the one JSON encoder of results,
    gate and merge documents."""
    if isinstance(x, np.ndarray):
        return encode_array(x)
    if isinstance(x, np.generic):  # numpy scalars (np.bool_ included) as Python values
        x = x.item()
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return num(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    return str(x)


# ---------------------------------------------------------------- environment


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(mod):
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return None


def environment(backend_status=None, frameworks=None, probe_fp=True) -> dict:
    """The run's environment: versions, CPU, backends, and ``fingerprint``
    (:func:`infoaudit.results.fingerprint.fingerprint`: CPU flags, devices and driver, FTZ/DAZ as
    probed, TF32 / matmul precision, XLA_FLAGS, threads). ``frameworks``: those to import and
    probe; default the available backends of ``backend_status`` (scipy counts as numpy), or numpy
    alone without a status. Take the floating-point state again at the end of a run with
    :func:`infoaudit.results.fingerprint.fp_state`."""
    from .. import __version__
    from .fingerprint import fingerprint

    pk = {name: _version(name) for name in ("numpy", "scipy", "mpmath", "gmpy2", "ml_dtypes", "hypothesis",
                                            "torch", "jax", "jaxlib", "optax", "matplotlib", "jinja2",
                                            "python-flint")}
    env = {
        "infoaudit": __version__,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "packages": {k: v for k, v in pk.items() if v},
    }
    if backend_status is not None:
        env["backends"] = jsonable(backend_status)
    if frameworks is None:
        frameworks = {"numpy"} | {("numpy" if r.get("backend") == "scipy" else r.get("backend"))
                                  for r in (backend_status or ()) if isinstance(r, dict) and r.get("available")}
    try:
        env["fingerprint"] = fingerprint(probe_fp=probe_fp, frameworks=tuple(sorted(frameworks)))
    except Exception as e:  # noqa: BLE001 - the fingerprint must never cost a run
        env["fingerprint"] = {"error": f"{type(e).__name__}: {e}"}
    return env


# ---------------------------------------------------------------- the document


def new_document(config: dict, env: dict) -> dict:
    return {"schema": SCHEMA, "version": VERSION, "status": "running", "config": jsonable(config),
            "environment": env, "started": now(), "updated": now(), "elapsed_s": 0.0,
            "groups": {}, "cells": {}, "panels": {}, "seeds_errata": None, "condition_examples": None}


def load(path) -> dict:
    with open(path) as fh:
        doc = json.load(fh)
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not an infoaudit results file (schema {doc.get('schema')!r})")
    if int(doc.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: results version {doc.get('version')} is newer than this infoaudit ({VERSION})")
    return doc


def write_atomic(path, doc: dict):
    """Write ``doc`` to ``path`` through a temporary file in the same folder and os.replace."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, allow_nan=False, separators=(",", ":"))
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def add_group(doc: dict, group: dict):
    """Merge one finished group (from :func:`infoaudit.run.tasks.run_group`) into the document."""
    doc["cells"].update(group["cells"])
    doc["groups"][group["group"]] = {"done": True, "seconds": round(group["seconds"], 3),
                                     "examples": group["examples"], "reference_errors": group["reference_errors"],
                                     "reference_over_budget": group.get("reference_over_budget", 0),
                                     "skipped": group["skipped"]}
    if group.get("compile"):   # torch.compile: seconds and FTZ/DAZ before/after (run.compile_log)
        doc["groups"][group["group"]]["compile"] = group["compile"]
    doc["updated"] = now()


__all__ = ["SCHEMA", "VERSION", "new_document", "load", "write_atomic", "add_group", "environment",
           "encode_array", "decode_array", "encode_args", "decode_args", "worst_dict", "num", "unnum", "jsonable"]
