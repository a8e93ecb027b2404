"""Serving under load: production request traces and arrival processes."""
