"""Processes: the parent that runs a suite, the child that runs one workload, the environment record."""
