"""Runnable reproducers: the smallest Python program that shows a finding with the backend's own op.

* :mod:`.values` -- a backend op's values from a results cell (``snippet``, ``verify``,
  ``best_snippet``);
* :mod:`.gradients` -- a backend op's vector-Jacobian products (``grad_snippet``, ``best_grad_snippet``);
* :mod:`.user` -- a user's implementation under the gate: values and gradients through its
  framework's autodiff (``value_reproducer``, ``gradient_reproducer``);
* :mod:`.literals` -- number and array literals shared by all of them.
"""

__all__: list = []
