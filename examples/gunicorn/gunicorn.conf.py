"""gunicorn configuration for an app instrumented with asgi-mcp-metrics (docs/deployment.md).

    export PROMETHEUS_MULTIPROC_DIR=/run/metrics   # an empty, writable directory (tmpfs)
    gunicorn -c gunicorn.conf.py --workers 4 --bind 0.0.0.0:8000 myapp:app
"""

# Server hooks, by name: on_starting empties the metrics directory before the first worker
# starts; child_exit takes a dead worker out of the live gauges (its counters stay).
from asgi_mcp_metrics.multiprocess import child_exit, on_starting

__all__ = ["child_exit", "on_starting"]

worker_class = "uvicorn_worker.UvicornWorker"
