"""The same gate inside pytest (the infoaudit plugin is active once infoaudit is installed)."""
import pytest

import infoaudit
from my_softmax import naive_softmax, softmax


def test_softmax_is_numerically_sound():
    infoaudit.assert_stable(softmax, "softmax", framework="torch")


def test_softmax_gradients_are_sound():
    # --grad: the gradients torch.autograd computes through softmax, against the exact derivative
    infoaudit.assert_stable(softmax, "softmax", framework="torch", grad=True)


def test_softmax_with_the_fixture(infoaudit_gate):
    infoaudit_gate(softmax, "softmax", framework="torch", dtype="float32")


@pytest.mark.xfail(reason="demonstrates the failure report: exp(z) overflows without the max shift", strict=True)
def test_naive_softmax_is_rejected():
    infoaudit.assert_stable(naive_softmax, "softmax", framework="torch", dtype="float32")
