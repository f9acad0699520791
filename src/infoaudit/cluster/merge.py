"""``infoaudit merge``: one results document from the shards of a run (``--shard i/N``).

The shards must share the schema, the version and the configuration (profile, seed, backends,
dtypes, quantities, settings, gradients; the ``shard`` entry aside), and together hold every
shard ``1..N``. Groups, cells and panels are united; one that appears in several shards must be
the same there (timings aside: a group's or panel's ``seconds``). The environment of the merged
document is the first shard's, with every shard's fingerprint kept under ``environment.shards``.
The merged cells are those the unsharded run gives (every group is a deterministic function
of its payload, and each group lies in exactly one shard). The merged ``scale`` section projects
the groups and panels of all shards as one run (:mod:`.scale_doc`, from their seconds).
"""
from __future__ import annotations

import copy

__all__ = ["merge_documents", "MergeError", "TIMING_KEYS", "first_difference"]

TIMING_KEYS = ("seconds",)   # fields of groups and panels that differ between equal runs
_SECTIONS = {"groups", "cells", "panels", "seeds_errata", "condition_examples", "config", "environment"}
_PER_RUN = {"status", "started", "updated", "elapsed_s", "cluster", "scale"}   # cluster, scale: recomputed below


class MergeError(ValueError):
    """The documents cannot be merged (one line: which and why)."""


def _strip(d):
    return {k: v for k, v in d.items() if k not in TIMING_KEYS} if isinstance(d, dict) else d


def _config(doc):
    return {k: v for k, v in (doc.get("config") or {}).items() if k != "shard"}


def first_difference(a, b, path=""):
    """The path (``a.b.0.c``) of the first place where ``a`` and ``b`` differ; "" when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}{k}"
            d = first_difference(a[k], b[k], f"{path}{k}.")
            if d:
                return d
        return ""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path.rstrip('.')} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}{i}.")
            if d:
                return d
        return ""
    return "" if a == b else path.rstrip(".") or "(value)"


def _union(out, src, section, name, owner, strip=False):
    for key, val in (src.get(section) or {}).items():
        if key in out[section]:
            a, b = (out[section][key], val) if not strip else (_strip(out[section][key]), _strip(val))
            if a != b:
                raise MergeError(f"{section[:-1]} {key!r} differs between {owner[section][key]} and {name} "
                                 f"(at {first_difference(a, b) or '?'})")
            continue
        out[section][key] = copy.deepcopy(val)
        owner[section][key] = name


def merge_documents(docs, names=None):
    """One results document from ``docs`` (loaded results.json dicts; ``names`` label them in
    messages). Returns ``(doc, warnings)``; raises MergeError."""
    from ..results import schema as R

    docs = list(docs)
    warnings = []
    names = list(names) if names is not None else [f"document {i + 1}" for i in range(len(docs))]
    if not docs:
        raise MergeError("nothing to merge")
    for d, nm in zip(docs, names):
        if d.get("schema") != R.SCHEMA:
            raise MergeError(f"{nm}: not an infoaudit results document (schema {d.get('schema')!r})")
        if d.get("version") != docs[0].get("version"):
            raise MergeError(f"{nm}: results version {d.get('version')} differs from {names[0]}'s "
                             f"{docs[0].get('version')}")
        if _config(d) != _config(docs[0]):
            where = first_difference(_config(docs[0]), _config(d))
            raise MergeError(f"{nm}: its configuration differs from {names[0]}'s (config.{where}); "
                             f"shards of one run share profile, seed, backends, dtypes and quantities")
    shards = [tuple(d["config"]["shard"]) for d in docs if (d.get("config") or {}).get("shard")]
    if shards and len(shards) == len(docs):
        ns = {n for _, n in shards}
        if len(ns) > 1:
            raise MergeError(f"shards of different splits: {', '.join(sorted(f'/{n}' for n in ns))}")
        (n,) = ns
        missing = sorted(set(range(1, n + 1)) - {i for i, _ in shards})
        if missing:
            raise MergeError(f"missing shard(s) {', '.join(f'{i}/{n}' for i in missing)}")
    base = docs[0]
    out = copy.deepcopy({k: v for k, v in base.items() if k not in _SECTIONS})
    out.update({"config": _config(base), "environment": copy.deepcopy(base.get("environment") or {}),
                "groups": {}, "cells": {}, "panels": {}, "seeds_errata": None, "condition_examples": None})
    out["started"] = min(str(d.get("started") or "") for d in docs) or R.now()
    for d, nm in zip(docs[1:], names[1:]):
        for k in sorted(set(d) - _SECTIONS - _PER_RUN):
            if d.get(k) != base.get(k):
                warnings.append(f"{k}: kept {names[0]}'s; {nm} has another")
    owner = {"groups": {}, "cells": {}, "panels": {}}
    for d, nm in zip(docs, names):
        _union(out, d, "groups", nm, owner, strip=True)
        _union(out, d, "cells", nm, owner)
        _union(out, d, "panels", nm, owner, strip=True)
        for k in ("seeds_errata", "condition_examples"):
            v = d.get(k)
            if v is None:
                continue
            if out.get(k) is None:
                out[k] = copy.deepcopy(v)
            elif out[k] != v:
                raise MergeError(f"{k} differs between the documents ({nm})")
    env_rows = []
    for d, nm in zip(docs, names):
        env = d.get("environment") or {}
        env_rows.append({"source": nm, "shard": (d.get("config") or {}).get("shard"), "status": d.get("status"),
                         "elapsed_s": d.get("elapsed_s"), "platform": env.get("platform"), "cpu": env.get("cpu"),
                         "packages": env.get("packages"), "fingerprint": env.get("fingerprint"),
                         "fingerprint_after": env.get("fingerprint_after")})
        if env.get("packages") != (base.get("environment") or {}).get("packages"):
            warnings.append(f"{nm} ran with other package versions than {names[0]}")
        if d.get("status") != "complete":
            warnings.append(f"{nm} is {d.get('status')!r}, not complete")
    out["environment"]["shards"] = env_rows
    out["status"] = "complete" if all(d.get("status") == "complete" for d in docs) else "interrupted"
    out["elapsed_s"] = max(float(d.get("elapsed_s") or 0.0) for d in docs)
    out["updated"] = R.now()
    out.pop("cluster", None)   # one shard's task stream and workers: kept per shard in environment.shards' sources
    from .scale_doc import scale_section

    out["scale"] = scale_section(out)   # every shard's groups and panels, projected as one run
    return out, warnings
