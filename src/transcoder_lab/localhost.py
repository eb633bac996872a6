"""The base of the lab's local web apps: a standard-library HTTP server on 127.0.0.1 only.

Two apps build on it: circuit-tracer's graph viewer (`circuits.circuit_tracer.server`) and the
blind study's rating app (`study.server`). Each subclasses `LocalHandler` with its routes (`get`,
`post`) and binds it with `bind`; what they share lives here, so a fix reaches both:

- loopback only: `bind` listens on 127.0.0.1 (`HOST`), never on another interface, port 0 picking
  a free one; request threads are daemons, so an interrupted server exits at once;
- a Host header check against DNS rebinding: a page of another site whose name was made to resolve
  to 127.0.0.1 still sends its own name as Host, so any Host but `127.0.0.1:<port>` or
  `localhost:<port>` is refused (421 Misdirected Request) before a route runs;
- the same headers on every response (`SECURITY_HEADERS`): no caching (`Cache-Control: no-store`:
  the answers change as graphs or ratings are saved), no MIME sniffing, no Referer sent onwards;
- errors as JSON `{"error": "<message>"}` with the status: `RequestError` carries its own, anything
  else a route raises is a 500 with the exception's type and message (the server keeps serving and
  the page shows the reason); an error response closes the connection, since the request's body
  may be left unread on it; a method other than GET and POST is a 405;
- `read_json`: a request body, refused unless it has a Content-Length (411) of at most the
  handler's `max_body_bytes` (413, not read), the type application/json (415, which also keeps
  cross-site HTML forms out: they cannot send it) and is one UTF-8 JSON object (400).

It imports nothing from the rest of the package, so any module may use it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
JSON_TYPE = "application/json; charset=utf-8"


class RequestError(Exception):
    """A request refused with `status` and a message for the page."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class LocalHandler(BaseHTTPRequestHandler):
    """Request handling shared by the local apps; a subclass defines `get` and `post` (each reads
    the path from `route()`) and may override `error_status` to map its own exceptions."""

    server_version = "transcoder-lab"
    sys_version = ""
    log_name = "local"  # the prefix of each logged request
    max_body_bytes = 16 * 1024

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"[{self.log_name}] {self.address_string()} {format % args}\n")

    # -- responses

    def send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: HTTPStatus, data: Any) -> None:
        self.send(status, json.dumps(data).encode(), JSON_TYPE)

    def send_error_json(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True  # a body the route refused may still be unread on the socket
        self.send_json(status, {"error": message})

    # -- requests

    def allowed_hosts(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"{HOST}:{port}", f"localhost:{port}"}

    def check_host(self) -> None:
        """Refuse (421) a Host header that is not this server's address (DNS rebinding)."""
        host = self.headers.get("Host", "")
        allowed = self.allowed_hosts()
        if host not in allowed:
            raise RequestError(
                HTTPStatus.MISDIRECTED_REQUEST,
                f"Host header {host!r} is not this server's ({' or '.join(sorted(allowed))})",
            )

    def route(self) -> str:
        """The request's path, percent-decoded, once its Host header is checked."""
        self.check_host()
        return unquote(urlsplit(self.path).path)

    def read_json(self) -> dict[str, Any]:
        """The request's body: one JSON object, within the checks of the module docstring."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if not length.isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a number")
        if int(length) > self.max_body_bytes:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is {int(length)} bytes; at most {self.max_body_bytes} are accepted",
            )
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be application/json, not {content_type!r}",
            )
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"the body is not valid UTF-8 JSON: {error}"
            ) from error
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    # -- dispatch

    def error_status(self, error: Exception) -> HTTPStatus | None:
        """The status for an exception a route raised other than RequestError; None: a 500."""
        return None

    def handle_errors(self, action: Callable[[], None]) -> None:
        try:
            action()
        except RequestError as error:
            self.send_error_json(error.status, str(error))
        except Exception as error:  # the server keeps serving; the page shows the reason
            status = self.error_status(error)
            if status is not None:
                self.send_error_json(status, str(error))
            else:
                self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")

    def get(self) -> None:
        raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "GET is not supported")

    def post(self) -> None:
        raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "POST is not supported")

    def do_GET(self) -> None:  # noqa: N802
        self.handle_errors(self.get)

    def do_POST(self) -> None:  # noqa: N802
        self.handle_errors(self.post)

    def _not_allowed(self) -> None:
        self.send_error_json(
            HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported; use GET or POST"
        )

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815


def bind(handler: type[LocalHandler], port: int = 0) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer for `handler` on 127.0.0.1:`port` (0: any free port), not yet serving."""
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C (or SIGINT), then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
