"""The production kit: a Grafana dashboard, Prometheus rules and Kubernetes manifests, all
generated from :mod:`asgi_mcp_metrics.catalog` (``python -m asgi_mcp_metrics --help``)."""
