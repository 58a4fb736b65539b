"""Limits for solver runs in tests: a test's result is decided by a work budget or by the solver finishing.

`HANG_GUARD_S` is a wall-clock limit no healthy run approaches (the runs it guards take well under a second
of CPU): it only turns a hang into a failure, so a busy or slow machine never changes what a test asserts.
"""

HANG_GUARD_S = 3600.0
