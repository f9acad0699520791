"""Gate options, defined once: the argparse CLI (``infoaudit gate``), the pytest plugin
(``--infoaudit-*`` command-line options and ``infoaudit_*`` ini keys) and ``[tool.infoaudit]`` in
pyproject.toml all read this table (the pattern pytest-benchmark uses).

Precedence: explicit argument > command line > ``[tool.infoaudit]`` (or ini key) > default here.
This module is imported by the pytest plugin at startup: it must stay free of heavy imports.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["FRAMEWORKS", "ALL_DTYPES", "Option", "OPTIONS", "BY_DEST", "PYTEST_DEFAULTS",
           "add_to_argparse", "add_to_pytest", "find_pyproject", "load_toml", "tool_config", "resolve"]

FRAMEWORKS = ("numpy", "torch", "jax")
ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")
COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "emulate")   # gate.targets.COMPILE_MODES


def _dtype_list(text):
    """Parse 'float32,float16' (or a list) into a tuple of dtype names; ValueError when unknown."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        items = [str(x) for x in text]
    else:
        items = [s for s in str(text).replace(" ", ",").split(",")]
    out = []
    for s in items:
        s = s.strip()
        if not s:
            continue
        alias = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32",
                 "float": "float32", "fp64": "float64", "double": "float64"}.get(s.lower(), s.lower())
        if alias not in ALL_DTYPES:
            raise ValueError(f"unknown dtype {s!r}; choose from {', '.join(ALL_DTYPES)}")
        if alias not in out:
            out.append(alias)
    return tuple(out)


def _positive_int(text):
    v = int(text)
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _positive_float(text):
    v = float(text)
    if not v > 0:
        raise ValueError(f"must be > 0, got {v}")
    return v


@dataclass(frozen=True)
class Option:
    """One gate option. ``dest`` is the attribute name everywhere (argparse, pytest, pyproject)."""

    dest: str
    help: str
    default: object = None
    type: object = None            # callable text -> value (also applied to pyproject/ini values)
    choices: tuple | None = None
    flag: bool = False             # store_true
    metavar: str | None = None
    cli_only: bool = False         # not a pytest option (e.g. --impl)
    required: bool = False         # required on the CLI
    pyproject: bool = True         # may be set in [tool.infoaudit]
    short: tuple = field(default=())

    @property
    def cli_flag(self):
        return "--" + self.dest.replace("_", "-")

    @property
    def pytest_flag(self):
        return "--infoaudit-" + self.dest.replace("_", "-")

    @property
    def ini_name(self):
        return "infoaudit_" + self.dest

    def convert(self, value):
        if value is None:
            return None
        if self.flag:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if self.type is not None and not (isinstance(value, tuple) and self.dest == "dtype"):
            value = self.type(value)
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.cli_flag}: {value!r} is not one of {', '.join(self.choices)}")
        return value


OPTIONS: tuple[Option, ...] = (
    Option("impl", "the implementation to gate, as pkg.module:function (module importable from the "
           "current directory or sys.path)", metavar="MODULE:FUNCTION", cli_only=True, required=True,
           pyproject=False),
    Option("quantity", "the quantity it computes (see `infoaudit list`); its arguments follow the "
           "quantity table order (docs/design.md)", metavar="NAME", cli_only=True, required=True, pyproject=False),
    Option("framework", "the framework of the implementation's arrays (default: inferred from the "
           "module's imports, else numpy)", choices=FRAMEWORKS, cli_only=True),
    Option("dtype", "dtypes to audit, comma-separated (default: float32,float16 plus bfloat16 where "
           "the framework has it)", type=_dtype_list, metavar="DTYPES"),
    Option("device", "device for the framework arrays (cpu, cuda, ...)", default="cpu", metavar="DEVICE"),
    Option("profile", "profile (which grade passes): default (envelope and better), strict (conditioned and better), "
           "a profile defined in [tool.infoaudit.profiles], "
           "or a path to a .toml file", default="default", metavar="NAME|FILE"),
    Option("examples", "generated examples per dtype, after the fixed corpus", default=60,
           type=_positive_int, metavar="N"),
    Option("seed", "seed of the example generator (same seed, same inputs)", default=0, type=int, metavar="S"),
    Option("timeout", "per-call timeout of the implementation, in seconds", default=20.0,
           type=_positive_float, metavar="SECONDS"),
    Option("relative", "FlashAttention-style relative rule: pass when the error is at most K times the "
           "error of the framework's own op on the same inputs (overrides the profile's rule)",
           type=_positive_float, metavar="K"),
    Option("relative_to", "what --relative compares with: native (the framework's own op; default), eager (the "
           "implementation itself, not compiled and not under autocast), a variant of the framework's ops (e.g. "
           "log_target, compiled) or MODULE:FUNCTION", metavar="eager|native|VARIANT|MODULE:FUNCTION"),
    Option("compile", "audit torch.compile(impl, dynamic=True) instead of impl, values and --grad (compile caches "
           "off): default (Inductor), max-autotune (mode='max-autotune-no-cudagraphs') or emulate "
           "(emulate_precision_casts=True); torch only", choices=COMPILE_MODES, metavar="MODE"),
    Option("autocast", "run impl under torch.autocast(dtype=DTYPE) on float32 inputs (--dtype defaults to "
           "float32), judged against the exact value of those inputs; torch only",
           choices=("bfloat16", "float16"), metavar="DTYPE"),
    Option("baseline", "regression mode: fail only where a dtype cell gets worse than this stored "
           "--json result", metavar="FILE"),
    Option("flush_to_zero", "judge against the exact value rounded with subnormals flushed to zero "
           "(applied automatically where the backend is probed to flush)", flag=True),
    Option("grad", "also audit the implementation's gradients through its own framework's autodiff "
           "(torch.autograd / jax.vjp) against the exact derivative, after each dtype's forward audit "
           "(torch and jax only)", flag=True),
    Option("junit_xml", "write a JUnit XML report", metavar="FILE", cli_only=True, pyproject=False),
    Option("json", "write the results as JSON (usable later as --baseline)", metavar="FILE", cli_only=True,
           pyproject=False),
)

BY_DEST = {o.dest: o for o in OPTIONS}

# Defaults set by the pytest plugin for the running test (command line / ini, then the test's
# infoaudit marker); read by infoaudit.assert_stable. Empty outside pytest.
PYTEST_DEFAULTS: dict = {}


def add_to_argparse(parser):
    """Add every option to an argparse parser (``infoaudit gate``)."""
    for o in OPTIONS:
        kw = {"dest": o.dest, "help": o.help + (f" (default: {o.default})" if o.default is not None else "")}
        if o.flag:
            kw["action"] = "store_true"
            kw["default"] = None
        else:
            kw["default"] = None  # resolved later so that pyproject values can fill the gaps
            kw["metavar"] = o.metavar
            if o.choices:
                kw["choices"] = o.choices
        if o.required:
            kw["required"] = True
        parser.add_argument(o.cli_flag, *o.short, **kw)
    return parser


def add_to_pytest(parser):
    """Register ``--infoaudit-*`` options and ``infoaudit_*`` ini keys (pytest_addoption)."""
    group = parser.getgroup("infoaudit", "infoaudit numerical-stability gate")
    for o in OPTIONS:
        if o.cli_only:
            continue
        kw = {"dest": "infoaudit_" + o.dest, "help": o.help, "default": None}
        if o.flag:
            kw["action"] = "store_true"
        else:
            kw["metavar"] = o.metavar
        group.addoption(o.pytest_flag, **kw)
        parser.addini(o.ini_name, help=o.help, default=None)


def find_pyproject(start=None):
    """The nearest pyproject.toml from ``start`` (default: cwd) upwards, or None."""
    d = os.path.abspath(start or os.getcwd())
    while True:
        p = os.path.join(d, "pyproject.toml")
        if os.path.isfile(p):
            return p
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def load_toml(path):
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def tool_config(start=None) -> dict:
    """``[tool.infoaudit]`` of the nearest pyproject.toml ({} when there is none)."""
    p = find_pyproject(start)
    if not p:
        return {}
    try:
        data = load_toml(p)
    except Exception as e:  # a broken pyproject is a usage error, said once
        raise ValueError(f"{p}: cannot parse ({e})") from None
    cfg = data.get("tool", {}).get("infoaudit", {})
    cfg = dict(cfg)
    cfg["__file__"] = p
    return cfg


def resolve(explicit: dict, config: dict | None = None) -> dict:
    """Final option values: explicit (non-None) > config ([tool.infoaudit] / ini) > defaults.

    Values from config are converted with the option's type; ValueError names the option.
    """
    config = config or {}
    out = {}
    for o in OPTIONS:
        v = explicit.get(o.dest)
        if v is None and o.pyproject:
            for key in (o.dest, o.dest.replace("_", "-")):
                if key in config and config[key] is not None:
                    v = config[key]
                    break
        if v is None:
            v = o.default
        try:
            out[o.dest] = o.convert(v)
        except (TypeError, ValueError) as e:
            raise ValueError(f"option {o.cli_flag}: {e}") from None
    out["profiles_config"] = config.get("profiles", {}) if isinstance(config, dict) else {}
    out["config_file"] = config.get("__file__") if isinstance(config, dict) else None
    return out
