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
The loopback binding, the Host check, the headers, the body checks and the error format are
`transcoder_lab.localhost`'s, shared with the graph viewer's server.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from pathlib import Path
from typing import Any

from transcoder_lab.localhost import LocalHandler, RequestError, bind, serve_until_interrupted
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

DEFAULT_PORT = 8765
MAX_BODY_BYTES = 16 * 1024
RATING_FIELDS = {"card", "rating", "context_free", "note"}
_CARD = re.compile(r"/api/cards/(\d{1,9})")
_RATINGS = re.compile(r"/api/ratings/([^/]+)")


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


def make_handler(packet: Packet, store: RatingStore) -> type[LocalHandler]:
    class Handler(LocalHandler):
        server_version = "transcoder-lab-study"
        log_name = "study"
        max_body_bytes = MAX_BODY_BYTES

        def error_status(self, error: Exception) -> HTTPStatus | None:
            return HTTPStatus.BAD_REQUEST if isinstance(error, RatingError) else None

        def _rater(self, match: re.Match[str]) -> str:
            return check_rater_name(match.group(1))

        def get(self) -> None:
            path = self.route()
            if path in ("/", "/index.html"):
                self.send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/api/packet":
                manifest = packet.manifest
                self.send_json(HTTPStatus.OK, {
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
                self.send_json(HTTPStatus.OK, {"card": card, "html": html})
            elif match := _RATINGS.fullmatch(path):
                ratings = store.load(self._rater(match))
                self.send_json(HTTPStatus.OK, {"rater": ratings.rater, **ratings.to_json()})
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

        def post(self) -> None:
            path = self.route()
            match = _RATINGS.fullmatch(path)
            if not match:
                raise RequestError(
                    HTTPStatus.NOT_FOUND, f"cannot POST to {path}; ratings go to /api/ratings/<rater>"
                )
            rater = self._rater(match)
            self.send_json(HTTPStatus.OK, store.submit(rater, self.read_json()))

    return Handler


def make_server(packet_dir: str | Path, ratings_dir: str | Path | None = None, port: int = DEFAULT_PORT):
    """A ThreadingHTTPServer bound to 127.0.0.1:`port` (0: any free port) for the packet."""
    packet = load_packet(packet_dir)
    directory = Path(ratings_dir) if ratings_dir is not None else Path("ratings") / packet.manifest["profile"]
    store = RatingStore(packet, directory)
    return bind(make_handler(packet, store), port), store


def serve(packet_dir: str | Path, ratings_dir: str | Path | None = None, port: int = DEFAULT_PORT) -> None:
    server, store = make_server(packet_dir, ratings_dir, port)
    host, bound = server.server_address[:2]
    print(
        f"Serving {store.packet.n_cards} cards at http://{host}:{bound}/ ; ratings go to {store.directory}/",
        flush=True,
    )
    serve_until_interrupted(server)
