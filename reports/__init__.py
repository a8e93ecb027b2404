"""Reports built from run directories alone (never from the runner's memory).

Imports neither torch nor NVML: a report can be rebuilt on a laptop from a run directory copied
off a GPU box (`python -m profiler report RUN_DIR`).
"""
