"""The gate's report: per dtype a verdict (:class:`DtypeResult`), for the run a :class:`GateReport`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DtypeResult", "GateReport"]


@dataclass
class DtypeResult:
    dtype: str
    verdict: str                     # pass | fail | skipped
    cases: int = 0
    elements: int = 0
    grade: str | None = None         # the worst judged element's grade (infoaudit.judging)
    grades: dict = field(default_factory=dict)   # judged elements per grade
    profile: str = "default"         # the profile the cell was judged under
    why: str = ""                    # one line: the grade reached and both allowances (or what failed)
    unjudged: int = 0                # elements the profile does not judge (undefined exact value, inf inputs)
    max_ulp: float = 0.0
    max_abs: float = 0.0
    max_score: float = 0.0           # max |err| / max(conditioned, envelope allowance)
    nonfinite_total: int = 0
    fixed_max_score: float = 0.0     # over the fixed cases only (all of them always run)
    fixed_nonfinite: int = 0
    thresholds: dict = field(default_factory=dict)
    threshold_text: str = ""
    failure: dict | None = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0
    call_seconds: float = 0.0
    grad: dict | None = None         # --grad: the gradient audit of this dtype (gate.gradients.grad_cell)

    @property
    def grad_failed(self):
        return bool(self.grad) and self.grad.get("verdict") == "fail"

    @property
    def failed(self):
        return self.verdict == "fail" or self.grad_failed

    def as_dict(self):
        d = dict(self.__dict__)
        if d.get("grad") is None:
            d.pop("grad", None)
        return d


@dataclass
class GateReport:
    quantity: str
    impl: str
    framework: str
    device: str
    profile: str
    seed: int
    examples: int
    results: list
    source: tuple | None = None      # (file, line) of the implementation
    grad: bool = False               # gradients audited too (--grad)

    @property
    def passed(self):
        return all(r.verdict in ("pass", "skipped") and not r.grad_failed for r in self.results) and any(
            r.verdict == "pass" for r in self.results)

    @property
    def exit_code(self):
        return 0 if self.passed else 1

    def as_dict(self):
        return {"infoaudit_gate": 1, "quantity": self.quantity, "impl": self.impl, "framework": self.framework,
                "device": self.device, "profile": self.profile, "seed": self.seed, "examples": self.examples,
                "grad": self.grad, "passed": self.passed, "exit_code": self.exit_code,
                "cells": {r.dtype: r.as_dict() for r in self.results}}
