"""Metrics and evaluation loops (no model code)."""
