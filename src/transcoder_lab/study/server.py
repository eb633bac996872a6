"""The rating web app: a standard-library HTTP server for one packet, on 127.0.0.1 only.

Routes (everything else is a 404 with a message; methods other than GET and POST a 405):

- `GET /`: the single page (transcoder_lab.study.page).
- `GET /api/packet`: title, instructions, number of cards.
- `GET /api/cards/<k>`: card k's HTML, read from the file the manifest names for k. No path from
  a request ever reaches the file system, so nothing outside the packet's cards (the key lives
  outside the packet anyway) can be served, whatever the URL.
- `GET /api/ratings/<rater>`: that rater's saved ratings ({} when none).
- `POST /api/ratings/<rater>` with a JSON body `{"card", "rating", "context_free", "note"}`:
  checked (rater name, card in 1..N, rating yes / maybe / no, boolean tick, note at most 2,000
  characters, no other keys), then, under a lock, the rater's whole file
  `<ratings dir>/<rater>.json` is rewritten atomically (transcoder_lab.io), so an interrupted
  server loses nothing already acknowledged. A restart reads the files back.

Requests are refused with a 4xx and a JSON `{"error": ...}`: no Content-Length (411), a body over
`MAX_BODY_BYTES` (413, not read), a type other than application/json (415, which also keeps
cross-site forms out), malformed JSON or fields (400), a Host header other than this server's
loopback address (421, against DNS rebinding), a ratings file made on another packet (409).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from transcoder_lab.study.packet import Packet, load_packet
from transcoder_lab.study.page import PAGE
from transcoder_lab.study.ratings import (
    RatingError,
    RatingsFile,
    check_rater_name,
    check_rating,
    load_ratings,
    now,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 16 * 1024
RATING_FIELDS = {"card", "rating", "context_free", "note"}
_CARD = re.compile(r"/api/cards/(\d{1,9})")
_RATINGS = re.compile(r"/api/ratings/([^/]+)")


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class RatingStore:
    """Reads and writes the raters' files; one lock keeps concurrent submissions in order."""

    def __init__(self, packet: Packet, directory: Path) -> None:
        self.packet = packet
        self.directory = Path(directory)
        self.lock = threading.Lock()

    def path(self, rater: str) -> Path:
        return self.directory / f"{rater}.json"

    def load(self, rater: str) -> RatingsFile:
        path = self.path(rater)
        if not path.exists():
            return RatingsFile(rater, self.packet.packet_id)
        try:
            ratings = load_ratings(path, self.packet.n_cards)
        except RatingError as error:
            raise RequestError(HTTPStatus.CONFLICT, f"{error}; fix or move the file") from error
        if ratings.packet_id != self.packet.packet_id:
            raise RequestError(
                HTTPStatus.CONFLICT,
                f"{path} holds ratings made on another packet; move it away or use another rater name",
            )
        return ratings

    def submit(self, rater: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - RATING_FIELDS
        if unknown or "card" not in body or "rating" not in body:
            raise RatingError(
                f"the body must hold card and rating (and optionally context_free, note); got {sorted(body)}"
            )
        card = body["card"]
        if not isinstance(card, int) or isinstance(card, bool) or not 1 <= card <= self.packet.n_cards:
            raise RatingError(f"card must be a whole number in 1..{self.packet.n_cards}; got {card!r}")
        rating = check_rating(body["rating"], body.get("context_free", False), body.get("note", ""))
        rating.saved_at = now()
        with self.lock:
            ratings = self.load(rater)
            ratings.ratings[card] = rating
            ratings.save(self.path(rater))
        return {"saved": rating.to_json(), "card": card, "n_rated": len(ratings.ratings)}


def make_handler(packet: Packet, store: RatingStore, port_holder: list[int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "transcoder-lab-study"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"[study] {self.address_string()} {format % args}\n")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

        def _error(self, status: HTTPStatus, message: str) -> None:
            self.close_connection = True
            self._json(status, {"error": message})

        def _check_host(self) -> None:
            host = self.headers.get("Host", "")
            allowed = {f"{HOST}:{port_holder[0]}", f"localhost:{port_holder[0]}"}
            if host not in allowed:
                raise RequestError(
                    HTTPStatus.MISDIRECTED_REQUEST,
                    f"Host header {host!r} is not this server's ({' or '.join(sorted(allowed))})",
                )

        def _route(self) -> str:
            self._check_host()
            return unquote(urlsplit(self.path).path)

        def _rater(self, match: re.Match[str]) -> str:
            return check_rater_name(match.group(1))

        def _handle(self, action) -> None:
            try:
                action()
            except RequestError as error:
                self._error(error.status, str(error))
            except RatingError as error:
                self._error(HTTPStatus.BAD_REQUEST, str(error))
            except Exception as error:  # the server keeps serving; the rater sees the reason
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")

        def do_GET(self) -> None:  # noqa: N802
            self._handle(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._handle(self._post)

        def _not_allowed(self) -> None:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported; use GET or POST")

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

        def _get(self) -> None:
            path = self._route()
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/api/packet":
                manifest = packet.manifest
                self._json(HTTPStatus.OK, {
                    "title": manifest["title"], "instructions": manifest["instructions"],
                    "n_cards": packet.n_cards, "categories": manifest["categories"],
                })  # fmt: skip
            elif match := _CARD.fullmatch(path):
                card = int(match.group(1))
                if not 1 <= card <= packet.n_cards:
                    raise RequestError(
                        HTTPStatus.NOT_FOUND, f"no card {card}: the packet has cards 1..{packet.n_cards}"
                    )
                html = packet.card_file(card).read_text()
                self._json(HTTPStatus.OK, {"card": card, "html": html})
            elif match := _RATINGS.fullmatch(path):
                ratings = store.load(self._rater(match))
                self._json(HTTPStatus.OK, {"rater": ratings.rater, **ratings.to_json()})
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

        def _read_json(self) -> dict[str, Any]:
            length = self.headers.get("Content-Length")
            if length is None:
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            if not length.isdigit():
                raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a number")
            if int(length) > MAX_BODY_BYTES:
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"the body is {int(length)} bytes; at most {MAX_BODY_BYTES} are accepted",
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

        def _post(self) -> None:
            path = self._route()
            match = _RATINGS.fullmatch(path)
            if not match:
                raise RequestError(
                    HTTPStatus.NOT_FOUND, f"cannot POST to {path}; ratings go to /api/ratings/<rater>"
                )
            rater = self._rater(match)
            self._json(HTTPStatus.OK, store.submit(rater, self._read_json()))

    return Handler


def make_server(packet_dir: str | Path, ratings_dir: str | Path | None = None, port: int = DEFAULT_PORT):
    """A ThreadingHTTPServer bound to 127.0.0.1:`port` (0: any free port) for the packet."""
    packet = load_packet(packet_dir)
    directory = Path(ratings_dir) if ratings_dir is not None else Path("ratings") / packet.manifest["profile"]
    store = RatingStore(packet, directory)
    port_holder = [port]
    server = ThreadingHTTPServer((HOST, port), make_handler(packet, store, port_holder))
    server.daemon_threads = True
    port_holder[0] = server.server_address[1]
    return server, store


def serve(packet_dir: str | Path, ratings_dir: str | Path | None = None, port: int = DEFAULT_PORT) -> None:
    server, store = make_server(packet_dir, ratings_dir, port)
    host, bound = server.server_address[:2]
    print(
        f"Serving {store.packet.n_cards} cards at http://{host}:{bound}/ ; ratings go to {store.directory}/",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
