"""The layout's rules, checked on the source (docs/design.md, "Layout"): ruff (rules F and I) clean,
no import cycles, no private names across modules, ``__all__`` in every module, and the old module
paths (``infoaudit.audits.*``, ``infoaudit.report.reproducer``) kept as thin re-export shims.

Each check is a small function over the parsed source that returns the violations it finds, so a
test can hand it a planted violation and see it fail (``test_the_checks_catch_planted_violations``).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "infoaudit"

# old module -> the modules its public names now live in
SHIMS = {
    "infoaudit.audits.metrics": ["infoaudit.judging.metrics"],
    "infoaudit.audits.condition": ["infoaudit.judging.condition"],
    "infoaudit.audits.compare": ["infoaudit.differential"],
    "infoaudit.audits.grad_compare": ["infoaudit.grad_compare"],
    "infoaudit.audits.results": ["infoaudit.results.schema"],
    "infoaudit.audits.runner": ["infoaudit.run.driver", "infoaudit.run.profiles", "infoaudit.run.targets",
                                "infoaudit.run.group", "infoaudit.run.findings", "infoaudit.run.cells",
                                "infoaudit.run.tasks"],
    "infoaudit.audits.shrink": ["infoaudit.run.shrink"],
    "infoaudit.audits.grad_runner": ["infoaudit.run.gradients", "infoaudit.run.grad_group"],
    "infoaudit.audits.run_cmd": ["infoaudit.run.cli"],
    "infoaudit.audits.gate": ["infoaudit.gate.core", "infoaudit.gate.verdict", "infoaudit.gate.report",
                              "infoaudit.gate.search", "infoaudit.probes", "infoaudit.harness.calls",
                              "infoaudit.harness.frameworks", "infoaudit.harness.timeout", "infoaudit.reference.cache"],
    "infoaudit.audits.gate_grad": ["infoaudit.gate.gradients", "infoaudit.gate.grad_calls",
                                   "infoaudit.gate.grad_judge"],
    "infoaudit.audits.gate_cmd": ["infoaudit.gate.cli", "infoaudit.harness.loading"],
    "infoaudit.audits.gate_api": ["infoaudit.gate.api"],
    "infoaudit.audits.profiles": ["infoaudit.gate.profiles"],
    "infoaudit.audits.gate_harness": ["infoaudit.harness.calls", "infoaudit.harness.frameworks",
                                      "infoaudit.harness.timeout", "infoaudit.reference.cache",
                                      "infoaudit.reproducers.literals", "infoaudit.results.schema"],
    "infoaudit.audits.ftz": ["infoaudit.harness.ftz"],
    "infoaudit.report.reproducer": ["infoaudit.reproducers.values"],
    "infoaudit.report.grad_reproducer": ["infoaudit.reproducers.gradients"],
}
# old names that now live under another name
RENAMED = {("infoaudit.audits.gate", "reproducer"): ("infoaudit.reproducers.user", "value_reproducer"),
           ("infoaudit.audits.gate_grad", "reproducer"): ("infoaudit.reproducers.user", "gradient_reproducer")}
# names that must stay importable from the old paths (the documented entry points)
HEADLINE = {
    "infoaudit.audits.runner": ["search", "run_group", "targets_for", "PROFILE_SETTINGS"],
    "infoaudit.audits.gate": ["run_gate", "GateReport", "probes", "GateUsageError"],
    "infoaudit.audits.gate_api": ["gate", "assert_stable"],
    "infoaudit.audits.compare": ["compare", "Unsupported"],
    "infoaudit.audits.grad_compare": ["compare_grad"],
    "infoaudit.audits.results": ["load", "new_document", "write_atomic"],
    "infoaudit.report.reproducer": ["snippet", "verify"],
}


# ---------------------------------------------------------------- the source as modules


def modules(src: Path = SRC, package: str = PACKAGE) -> dict:
    """``{dotted module name: path}`` of every .py file of the package."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        out[name] = path
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _known(target: str, known) -> str | None:
    """The longest known module that ``target`` names or lies inside."""
    parts = target.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in known:
            return cand
    return None


def imports_of(module: str, tree: ast.AST, is_package: bool, known) -> list:
    """``[(node, base, alias)]`` for every import anywhere in the module (top level or inside a
    function: a deferred import still ties the two modules); ``base`` is the absolute module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node, a.name, a) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            out += [(node, base, a) for a in node.names]
    return out


def import_graph(sources: dict) -> dict:
    """``{module: {imported module}}`` from ``{module: (source text, is_package)}``."""
    known = set(sources)
    edges = {m: set() for m in sources}
    for m, (text, is_pkg) in sources.items():
        for node, base, alias in imports_of(m, ast.parse(text), is_pkg, known):
            targets = [base] if isinstance(node, ast.Import) else [base, f"{base}.{alias.name}"]
            for t in targets:
                hit = _known(t, known)
                if hit and hit != m and not m.startswith(hit + "."):
                    edges[m].add(hit)
    return edges


def cycles(edges: dict) -> list:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


PRODUCTS = ("infoaudit.run", "infoaudit.gate")


def product_edges(edges: dict) -> list:
    """Imports from one product package (run, gate) into the other: what they share belongs in a
    shared package (judging, harness, reproducers, results, reference, ...)."""
    def product(m):
        return next((p for p in PRODUCTS if m == p or m.startswith(p + ".")), None)
    return sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts
                  if product(m) and product(t) and product(m) != product(t))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(sources: dict) -> list:
    """``from infoaudit... import _name`` and ``alias._name`` where ``alias`` is an imported
    infoaudit module, as ``"module:line: what"``."""
    known = set(sources)
    out = []
    for m, (text, is_pkg) in sources.items():
        tree = ast.parse(text)
        aliases = set()
        for node, base, alias in imports_of(m, tree, is_pkg, known):
            if not base.startswith(PACKAGE):
                continue
            if isinstance(node, ast.Import):
                if alias.asname:
                    aliases.add(alias.asname)
                continue
            if _private(alias.name):
                out.append(f"{m}:{node.lineno}: from {base} import {alias.name}")
            elif f"{base}.{alias.name}" in known:
                aliases.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)):
                out.append(f"{m}:{node.lineno}: {node.value.id}.{node.attr}")
    return out


def missing_all(sources: dict) -> list:
    """Modules without a module-level ``__all__``."""
    out = []
    for m, (text, _) in sources.items():
        tree = ast.parse(text)
        has = any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
                  or isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == "__all__"
                  for n in tree.body)
        if not has:
            out.append(m)
    return out


def not_thin(text: str) -> list:
    """What a shim holds besides its docstring, imports and ``__all__``."""
    out = []
    for i, n in enumerate(ast.parse(text).body):
        if i == 0 and isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant):
            continue
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["__all__"]:
            continue
        out.append(f"line {n.lineno}: {type(n).__name__}")
    return out


@pytest.fixture(scope="module")
def sources():
    return {m: (p.read_text(encoding="utf-8"), p.name == "__init__.py") for m, p in modules().items()}


# ---------------------------------------------------------------- the checks


def test_ruff_is_clean():
    """``ruff check`` (rules F and I, configured in pyproject.toml) on src, tests, benchmarks, scripts."""
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks",
                          "scripts"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_no_import_cycles(sources):
    found = cycles(import_graph(sources))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_products_do_not_import_each_other(sources):
    found = product_edges(import_graph(sources))
    assert not found, "run <-> gate imports: " + "; ".join(found)


def test_no_private_names_across_modules(sources):
    found = private_uses(sources)
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_every_module_defines_all(sources):
    assert not missing_all(sources)


@pytest.mark.parametrize("old", sorted(SHIMS))
def test_old_paths_are_thin_shims_of_the_same_objects(old):
    path = SRC / (old.replace(".", "/") + ".py")
    assert not not_thin(path.read_text(encoding="utf-8")), f"{old} is not a thin shim"
    shim = importlib.import_module(old)
    new = [importlib.import_module(m) for m in SHIMS[old]]
    assert shim.__all__, old
    for name in shim.__all__:
        if (old, name) in RENAMED:
            home, real = RENAMED[(old, name)]
            assert getattr(shim, name) is getattr(importlib.import_module(home), real), f"{old}.{name}"
            continue
        homes = [m for m in new if name in vars(m)]
        assert homes, f"{old}.{name}: in none of {SHIMS[old]}"
        assert getattr(shim, name) is getattr(homes[0], name), f"{old}.{name} is not {homes[0].__name__}.{name}"
    assert set(HEADLINE.get(old, ())) <= set(shim.__all__)


@pytest.mark.parametrize("package", PRODUCTS)
def test_the_products_public_names_resolve(package):
    """Every name in ``__all__`` of infoaudit.run / infoaudit.gate (imported on first use) exists."""
    mod = importlib.import_module(package)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{package}: {missing}"
    shadowed = [n for n in mod.__all__ if isinstance(getattr(mod, n), types.ModuleType)]
    assert not shadowed, f"{package}: public names shadowed by submodules: {shadowed}"


def test_the_checks_catch_planted_violations():
    """Each check fails on a small planted violation (and passes on its clean twin)."""
    a = ("from . import b\nfrom ._hidden import x\nimport infoaudit.c as C\n"
         "def f():\n    from .b import _y\n    return C._z, b._w\n")
    planted = {
        "infoaudit": ("__all__ = []\n", True),
        "infoaudit.a": (a, False),
        "infoaudit.b": ("def g():\n    from . import a\n__all__ = ['g']\n", False),
        "infoaudit.c": ("__all__ = []\n", False),
        "infoaudit._hidden": ("x = 1\n__all__ = ['x']\n", False),
    }
    assert cycles(import_graph(planted)) == [["infoaudit.a", "infoaudit.b"]]
    found = private_uses(planted)
    assert len(found) == 3 and any("b._w" in f for f in found) and any("C._z" in f for f in found)
    assert any("import _y" in f for f in found)
    assert missing_all(planted) == ["infoaudit.a"]
    assert not_thin("'''doc'''\nfrom x import y\n__all__ = ['y']\n") == []
    assert not_thin("from x import y\ndef z():\n    pass\n__all__ = ['y']\n") == ["line 2: FunctionDef"]
    crossing = {"infoaudit.run.x": ("def f():\n    from ..gate import y\n", False),
                "infoaudit.gate": ("", True), "infoaudit.gate.y": ("", False), "infoaudit.run": ("", True)}
    assert product_edges(import_graph(crossing)) == ["infoaudit.run.x -> infoaudit.gate", "infoaudit.run.x -> infoaudit.gate.y"]
    clean = {"infoaudit": ("__all__ = []\n", True), "infoaudit.b": ("__all__ = ['g']\ndef g():\n    pass\n", False)}
    assert cycles(import_graph(clean)) == [] and private_uses(clean) == [] and missing_all(clean) == []
