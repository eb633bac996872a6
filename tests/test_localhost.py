"""The local web apps' base (transcoder_lab.localhost) over real HTTP, on a handler of its own:
loopback binding, the Host check, the headers every response carries, JSON bodies and errors."""

import http.client
import json
import socket
import threading
from http import HTTPStatus

import pytest

from transcoder_lab.localhost import HOST, SECURITY_HEADERS, LocalHandler, RequestError, bind


class Echo(LocalHandler):
    """GET /ok answers JSON, /missing a RequestError, /value a mapped exception, /crash a 500;
    POST /echo returns the posted object."""

    log_name = "test"
    max_body_bytes = 64

    def log_message(self, format, *args):  # noqa: A002
        pass  # keep the test output quiet

    def error_status(self, error):
        return HTTPStatus.BAD_REQUEST if isinstance(error, KeyError) else None

    def get(self):
        path = self.route()
        if path == "/ok":
            self.send_json(HTTPStatus.OK, {"ok": True})
        elif path == "/value":
            raise KeyError("mapped")
        elif path == "/crash":
            raise ValueError("boom")
        else:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def post(self):
        if self.route() != "/echo":
            raise RequestError(HTTPStatus.NOT_FOUND, "cannot POST there")
        self.send_json(HTTPStatus.OK, self.read_json())


@pytest.fixture
def server():
    served = bind(Echo, 0)
    thread = threading.Thread(target=served.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


def request(server, method, path, body=None, headers=None):
    port = server.server_address[1]
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.request(method, path, body, {"Host": f"{HOST}:{port}", **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_binds_to_loopback_only(server):
    assert HOST == "127.0.0.1"
    assert server.server_address[0] == "127.0.0.1" and server.server_address[1] > 0
    assert server.socket.family == socket.AF_INET and server.daemon_threads


def test_a_foreign_host_is_refused_with_421(server):
    port = server.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", ""):
        response, data = request(server, "GET", "/ok", headers={"Host": host})
        assert response.status == 421, host
        assert "Host header" in json.loads(data)["error"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        response, data = request(server, "GET", "/ok", headers={"Host": host})
        assert response.status == 200 and json.loads(data) == {"ok": True}, host


def test_every_response_carries_the_security_headers(server):
    assert SECURITY_HEADERS == {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    for path, status in (("/ok", 200), ("/missing", 404), ("/crash", 500)):
        response, _ = request(server, "GET", path)
        assert response.status == status
        for name, value in SECURITY_HEADERS.items():
            assert response.getheader(name) == value, (path, name)
        assert response.getheader("Content-Type") == "application/json; charset=utf-8"


def test_errors_are_json_and_close_the_connection(server):
    for method, path, status, message in [
        ("GET", "/missing", 404, "no such page: /missing"),
        ("GET", "/value", 400, "'mapped'"),
        ("GET", "/crash", 500, "ValueError: boom"),
        ("PUT", "/ok", 405, "PUT is not supported; use GET or POST"),
        ("DELETE", "/ok", 405, "DELETE is not supported; use GET or POST"),
    ]:
        response, data = request(server, method, path)
        assert response.status == status, path
        assert json.loads(data) == {"error": message}
        assert response.getheader("Connection") == "close" or response.will_close


def test_json_bodies_are_checked(server):
    sent = {"Content-Type": "application/json"}
    response, data = request(server, "POST", "/echo", b'{"a": 1}', sent)
    assert response.status == 200 and json.loads(data) == {"a": 1}
    for body, headers, status in [
        (b"x" * 65, sent, 413),
        (b'{"a": 1}', {"Content-Type": "text/plain"}, 415),
        (b"{not json", sent, 400),
        (b"[1]", sent, 400),
        (b"\xff", sent, 400),
    ]:
        response, data = request(server, "POST", "/echo", body, headers)
        assert response.status == status, body
        assert json.loads(data)["error"]
    port = server.server_address[1]
    with socket.create_connection((HOST, port), timeout=10) as raw:
        raw.sendall(
            f"POST /echo HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n\r\n".encode()
        )
        # headers and body may arrive in separate packets: read until the server closes (it does
        # after every error)
        reply = b"".join(iter(lambda: raw.recv(4096), b"")).decode()
    assert reply.split(" ", 2)[1] == "411" and "Content-Length header is required" in reply
