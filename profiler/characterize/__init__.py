"""Derived facts from raw records: statistics, per-request metrics, fits, roofline, energy."""
