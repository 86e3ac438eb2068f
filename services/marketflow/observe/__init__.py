"""Observability: Prometheus metrics, defined once, registry injected."""
