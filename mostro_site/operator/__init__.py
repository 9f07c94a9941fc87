"""Operator pages: the live settings form and the dashboard (operators only)."""
