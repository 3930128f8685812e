"""Test support shipped with ordercore: hypothesis strategies (:mod:`ordercore.testing.strategies`), a
pytest plugin with an in-memory application fixture (:mod:`ordercore.testing.plugin`, registered
automatically), and contract suites any store adapter can be checked against
(:mod:`ordercore.testing.contracts`).

This package imports hypothesis and pytest only in the modules that need them.
"""
