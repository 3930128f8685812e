"""Test support shipped with ordercore: hypothesis strategies (:mod:`ordercore.testing.strategies`), a
pytest plugin with an in-memory application fixture (:mod:`ordercore.testing.plugin`, registered
automatically), and contract suites: for store adapters (:mod:`ordercore.testing.contracts`) and for a
consumer's transactional processed-event stores (:mod:`ordercore.testing.processed`).

This package imports hypothesis and pytest only in the modules that need them.
"""
