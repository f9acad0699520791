"""Runnable reproducers: the smallest Python program that shows a finding with the backend's own op.

* :mod:`.values` -- forward values (``snippet``, ``verify``, ``best_snippet``);
* :mod:`.gradients` -- vector-Jacobian products (``grad_snippet``, ``best_grad_snippet``).
"""

__all__: list = []
