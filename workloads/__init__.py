"""Built-in workload plugins, registered in pyproject.toml exactly like third-party ones.

Modules here import only the profiler's public API at import time; torch and the model libraries
are imported inside `setup`, so `validate`, `list` and `schema` stay light.
"""
