"""Run the example: ``python -m examples.mcp_proxy`` from the repository root.

Starts the HTTP backend (weather) on ``--backend-port`` and the proxy on ``--port``; the proxy
starts the stdio backend (notes) itself on first use.
"""

from __future__ import annotations

import argparse
import threading

import uvicorn

from .app import ProxyConfig, build_proxy, default_backends
from .weather_server import build_weather_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8930)
    parser.add_argument("--backend-port", type=int, default=8931)
    parser.add_argument("--idle-timeout", type=float, default=30.0,
                        help="seconds without calls before a backend is disconnected")
    parser.add_argument("--reap-interval", type=float, default=5.0,
                        help="seconds between two runs of the idle reaper")
    args = parser.parse_args()

    backend = uvicorn.Server(uvicorn.Config(build_weather_app(), host="127.0.0.1",
                                            port=args.backend_port, log_level="warning"))
    threading.Thread(target=backend.run, name="weather-backend", daemon=True).start()

    config = ProxyConfig(backends=default_backends(f"http://127.0.0.1:{args.backend_port}/mcp"),
                         idle_timeout=args.idle_timeout, reap_interval=args.reap_interval)
    uvicorn.run(build_proxy(config), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
