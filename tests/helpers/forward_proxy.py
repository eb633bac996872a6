"""A forwarding HTTP proxy on 127.0.0.1 for tests: the only route to a stand-in hub whose host name
resolves nowhere else.

The proxy maps host names to addresses itself (`hosts`, loopback addresses only), so an endpoint such
as `http://hub.invalid:<port>` is reachable through it and through nothing else, and the proxy never
connects anywhere but to those addresses: a request for any other host is answered 502 unsent. It
serves the two ways a client uses an HTTP proxy:
- `CONNECT host:port` (the client's HTTPS route): answers 200 and relays bytes both ways until
  either side closes.
- an absolute-form request (`GET http://host:port/path HTTP/1.1`, the plain-HTTP route): sends it
  on in origin form (`GET /path`) with `Connection: close` and the proxy's own headers removed, then
  relays the answer with its `Connection` header replaced by `Connection: close`, so that each
  client connection carries one request and the upstream's closing ends the answer.
Each request is recorded in `forwarded` as (method, host, port). Sockets time out after `timeout_s`,
so no relay waits forever; the server thread stops with `stop()` (or the context manager).
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import socketserver
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)
MAX_HEAD = 64 * 1024


class ForwardProxy:
    def __init__(self, hosts: Mapping[str, str], timeout_s: float = 60.0) -> None:
        for name, address in hosts.items():
            if not ipaddress.ip_address(address).is_loopback:
                raise ValueError(f"{name} -> {address}: the test proxy only forwards to loopback addresses")
        self.hosts = {name.lower(): address for name, address in hosts.items()}
        self.timeout_s = timeout_s
        self.forwarded: list[tuple[str, str, int]] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> ForwardProxy:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ProxyHandler)
        server.daemon_threads = True
        server.proxy = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, name="forward proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def connect(self, host: str, port: int) -> socket.socket | None:
        """A connection to a mapped host (None for a host the proxy does not know)."""
        address = self.hosts.get(host.lower())
        if address is None:
            with self._lock:
                self.refused.append(f"{host}:{port}")
            return None
        return socket.create_connection((address, port), timeout=self.timeout_s)

    def record(self, method: str, host: str, port: int) -> None:
        with self._lock:
            self.forwarded.append((method, host, port))


def _read_head(reader) -> bytes:
    """An HTTP message's head (request or status line and headers, through the blank line)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline(MAX_HEAD)
        if not line:
            break
        head += line
        if len(head) > MAX_HEAD:
            raise ValueError("HTTP head too long")
    return head


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    return [
        (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines if line)
    ]


class _ProxyHandler(socketserver.StreamRequestHandler):
    """One client connection: one CONNECT tunnel or one forwarded request (module docstring)."""

    # Unbuffered reads: the head is read line by line and nothing beyond it is taken from the socket,
    # so a tunnel relays every byte that follows (a buffered reader could hold some back).
    rbufsize = 0

    @property
    def proxy(self) -> ForwardProxy:
        return self.server.proxy  # type: ignore[attr-defined]

    def setup(self) -> None:
        self.timeout = self.proxy.timeout_s
        super().setup()

    def handle(self) -> None:
        head = _read_head(self.rfile)
        if not head:
            return
        request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            return self._tunnel(host, int(port))
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            return self._answer(400, "absolute http:// URL expected")
        upstream = self.proxy.connect(url.hostname, url.port or 80)
        if upstream is None:
            return self._answer(502, f"the test proxy does not forward to {url.hostname}")
        self.proxy.record(method, url.hostname, url.port or 80)
        with upstream:
            path = url.path or "/"
            headers = [(n, v) for n, v in _headers(lines) if n.lower() not in HOP_BY_HOP]
            out = [f"{method} {path}{'?' + url.query if url.query else ''} {version}"]
            out += [f"{name}: {value}" for name, value in headers] + ["Connection: close", "", ""]
            upstream.sendall("\r\n".join(out).encode("latin-1"))
            length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
            if length:
                upstream.sendall(self.rfile.read(length))
            reader = upstream.makefile("rb")
            status_line, *answer = _read_head(reader).decode("latin-1").rstrip("\r\n").split("\r\n")
            kept = [f"{n}: {v}" for n, v in _headers(answer) if n.lower() not in HOP_BY_HOP]
            self.wfile.write("\r\n".join([status_line, *kept, "Connection: close", "", ""]).encode("latin-1"))
            for block in iter(lambda: reader.read1(1 << 20), b""):  # until the upstream closes
                self.wfile.write(block)

    def _tunnel(self, host: str, port: int) -> None:
        upstream = self.proxy.connect(host, port)
        if upstream is None:
            return self._answer(502, f"the test proxy does not forward to {host}")
        self.proxy.record("CONNECT", host, port)
        with upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with selectors.DefaultSelector() as selector:
                selector.register(self.connection, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, self.connection)
                while True:
                    ready = selector.select(self.proxy.timeout_s)
                    if not ready:
                        return  # idle past the timeout
                    for key, _ in ready:
                        data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
                        if not data:
                            return
                        key.data.sendall(data)

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        head = f"HTTP/1.1 {status} {text}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        self.wfile.write(head.encode("latin-1") + body)
