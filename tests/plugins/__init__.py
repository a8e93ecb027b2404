"""Workload plugins used only by tests, loaded as 'tests.plugins.<module>:<Class>'."""
