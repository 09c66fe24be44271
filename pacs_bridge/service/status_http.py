"""A tiny loopback HTTP endpoint: GET /health and /status (JSON), GET /metrics (Prometheus).

/health answers 503 when the bridge is degraded (destination unreachable, failed studies),
so a plain HTTP monitor notices without parsing the body.

Standard library only (no web framework for two read-only routes). Bound to 127.0.0.1;
the config refuses any other host, because status lists study UIDs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StatusServer:
    def __init__(
        self, host: str, port: int, health: Callable[[], dict], status: Callable[[], dict],
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        routes = {"/health": health, "/status": status}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                if path == "/metrics" and metrics is not None:
                    self._reply(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
                    return
                fn = routes.get(path)
                if fn is None:
                    code, body = 404, {"error": "not found", "routes": sorted(routes)}
                else:
                    try:
                        body = fn()
                        degraded = path == "/health" and body.get("status") == "degraded"
                        code = 503 if degraded else 200
                    except Exception as exc:  # report, never drop the connection
                        code, body = 500, {"error": type(exc).__name__}
                data = json.dumps(body, indent=1, default=str).encode()
                self._reply(code, data, "application/json")

            def _reply(self, code: int, data: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # access logs add noise and nothing an operator needs

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="bridge-status-http", daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> int:
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
