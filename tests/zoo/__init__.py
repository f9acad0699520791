"""A zoo of user-style implementations for the gate's own test suite.

Each framework module (``zoo_numpy``, ``zoo_torch``, ``zoo_jax``) defines module-level functions
(importable as ``--impl tests.zoo.zoo_torch:softmax_native``) and a list ``MEMBERS`` of
:class:`Member`: the quantity, the function's name, whether it is a correctly implemented stable
algorithm (the gate must exit 0) or a textbook-unstable one (the gate must exit 1 with a
reproducer), and one line saying why.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Member:
    framework: str
    quantity: str
    name: str
    stable: bool
    why: str
    finding: str = ""   # a framework op that the gate rejects: documented, expected to exit 1

    @property
    def expected_exit(self):
        return 0 if self.stable and not self.finding else 1

    @property
    def impl(self):
        return f"tests.zoo.zoo_{self.framework}:{self.name}"

    @property
    def id(self):
        return f"{self.framework}:{self.name}"


@dataclass(frozen=True)
class GradMember:
    """A member of the gradient zoo (``infoaudit gate --grad``): its forward values are sound (the
    gate without --grad passes it, unless ``forward_finding``), its gradient is sound or not."""

    framework: str
    quantity: str
    name: str
    grad_sound: bool
    why: str
    finding: str = ""           # a framework op whose gradient the gate rejects: documented, exit 1
    module: str = ""            # where the function lives (default: tests.zoo.zoo_grad_<framework>)
    forward_finding: bool = False   # the forward gate already rejects it (a documented forward finding)
    expect_kind: str = "numerical"  # how an unsound member must fail: on its numbers, or not_differentiable

    @property
    def expected_grad_exit(self):
        return 0 if self.grad_sound and not self.finding else 1

    @property
    def expected_forward_exit(self):
        return 1 if self.forward_finding else 0

    @property
    def impl(self):
        return f"{self.module or f'tests.zoo.zoo_grad_{self.framework}'}:{self.name}"

    @property
    def id(self):
        return f"{self.framework}:{self.name}"


def grad_members():
    """Every gradient-zoo member whose framework imports here."""
    out = []
    for mod in ("zoo_grad_torch", "zoo_grad_jax"):
        try:
            m = __import__(f"{__name__}.{mod}", fromlist=["GRAD_MEMBERS"])
        except ImportError:
            if CI:  # CI must audit every framework: a missing one is a failure, not a smaller zoo
                raise
            continue
        out += m.GRAD_MEMBERS
    return out


def register(module_globals, framework, members, quantity, name, fn, stable, why, finding=""):
    inner = fn

    def fn(*args):
        return inner(*args)
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__module__ = module_globals["__name__"]
    module_globals[name] = fn
    members.append(Member(framework, quantity, name, stable, why, finding))
    return fn


def all_members():
    """Every member of every framework whose framework imports here."""
    out = []
    from . import zoo_numpy
    out += zoo_numpy.MEMBERS
    for mod in ("zoo_torch", "zoo_jax"):
        try:
            m = __import__(f"{__name__}.{mod}", fromlist=["MEMBERS"])
        except ImportError:
            if CI:  # CI must audit every framework: a missing one is a failure, not a smaller zoo
                raise
            continue
        out += m.MEMBERS
    return out
