"""Shared pytest set-up. The folder holding this file is put on ``sys.path`` by pytest (rootdir
conftest, no ``__init__.py``), so tests can ``import otlp_factories``."""
