"""Operator surfaces served next to the metrics endpoint: a live dashboard with history,
requests in flight, running totals and a deep health check (``docs/surfaces.md``).

Every surface reads what the recording path already keeps (the registry, the in-flight table,
the backend monitors); nothing here runs on the request path.
"""
