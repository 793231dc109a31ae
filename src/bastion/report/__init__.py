"""Metrics and reports: SOC figures from recorded timestamps, charts, and HTML/PDF/Markdown reports."""
