"""The rating server over real HTTP: routes, saving, restarts, and what it refuses."""

import http.client
import json
import socket
import threading

import pytest

from transcoder_lab.study.ratings import load_ratings
from transcoder_lab.study.server import MAX_BODY_BYTES, make_server

from helpers.study_packets import synthetic_packet


class Running:
    def __init__(self, packet_dir, ratings_dir):
        self.server, self.store = make_server(packet_dir, ratings_dir, port=0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.stopped = False

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data

    def json(self, method, path, body=None, headers=None):
        status, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def stop(self):
        if not self.stopped:
            self.server.shutdown()
            self.server.server_close()
            self.stopped = True


@pytest.fixture
def served(tmp_path):
    packet, key_path = synthetic_packet(tmp_path, n_cards=4)
    running = Running(packet.directory, tmp_path / "ratings")
    yield running, packet, key_path, tmp_path / "ratings"
    running.stop()


def test_binds_to_loopback_only(served):
    running, *_ = served
    assert running.server.server_address[0] == "127.0.0.1"


def test_page_packet_and_cards(served):
    running, packet, *_ = served
    status, page = running.request("GET", "/")
    assert status == 200 and b"Blind feature study" in page
    status, info = running.json("GET", "/api/packet")
    assert status == 200 and info["n_cards"] == 4 and "key_sha256" not in info
    status, card = running.json("GET", "/api/cards/3")
    assert status == 200 and card["html"] == packet.card_file(3).read_text()
    for missing in ("/api/cards/0", "/api/cards/5", "/api/cards/-1", "/api/cards/x", "/nothing"):
        status, error = running.json("GET", missing)
        assert status == 404 and error["error"], missing


def test_a_rating_is_saved_at_once_and_survives_a_restart(served):
    running, packet, _, ratings_dir = served
    body = {"card": 2, "rating": "maybe", "context_free": True, "note": "semicolons?"}
    status, result = running.json("POST", "/api/ratings/alice", body)
    assert status == 200 and result["n_rated"] == 1
    saved = load_ratings(ratings_dir / "alice.json", packet.n_cards)
    assert saved.packet_id == packet.packet_id
    assert (saved.ratings[2].rating, saved.ratings[2].context_free, saved.ratings[2].note) == (
        "maybe",
        True,
        "semicolons?",
    )
    assert running.json("POST", "/api/ratings/alice", {"card": 2, "rating": "yes"})[0] == 200
    running.stop()
    again = Running(packet.directory, ratings_dir)
    try:
        status, ratings = again.json("GET", "/api/ratings/alice")
        assert status == 200 and ratings["ratings"]["2"]["rating"] == "yes"
        assert again.json("GET", "/api/ratings/bob")[1]["ratings"] == {}
    finally:
        again.stop()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        ({"card": 1}, "card and rating"),
        ({"card": 1, "rating": "perhaps"}, "rating must be one of"),
        ({"card": 9, "rating": "yes"}, "card must be a whole number in 1..4"),
        ({"card": "1", "rating": "yes"}, "card must be a whole number"),
        ({"card": True, "rating": "yes"}, "card must be a whole number"),
        ({"card": 1, "rating": "yes", "context_free": "yes"}, "context_free must be true or false"),
        ({"card": 1, "rating": "yes", "note": "x" * 2001}, "note must be text"),
        ({"card": 1, "rating": "yes", "arm": "sae"}, "card and rating"),
    ],
)
def test_malformed_ratings_are_rejected_with_a_message(served, body, fragment):
    running, _, _, ratings_dir = served
    status, error = running.json("POST", "/api/ratings/alice", body)
    assert status == 400 and fragment in error["error"]
    assert not (ratings_dir / "alice.json").exists()


@pytest.mark.parametrize("rater", ["..", "a/b", "ground_truth", "x" * 41, "%2e%2e%2fkey", "-lead"])
def test_bad_rater_names_are_rejected(served, rater):
    running, *_ = served
    status, error = running.json("POST", f"/api/ratings/{rater}", {"card": 1, "rating": "yes"})
    assert status in (400, 404) and error["error"]


def test_oversized_and_mistyped_requests_are_rejected(served):
    running, *_ = served
    big = json.dumps({"card": 1, "rating": "yes", "note": "x" * MAX_BODY_BYTES}).encode()
    status, error = running.json("POST", "/api/ratings/alice", big)
    assert status == 413 and "at most" in error["error"]
    status, error = running.json("POST", "/api/ratings/alice", b'{"card": 1, "rating": "yes"}',
                                 headers={"Content-Type": "text/plain"})  # fmt: skip
    assert status == 415 and "application/json" in error["error"]
    status, error = running.json("PUT", "/api/ratings/alice", {"card": 1, "rating": "yes"})
    assert status == 405
    status, error = running.json("GET", "/api/packet", headers={"Host": "evil.example:80"})
    assert status == 421 and "Host" in error["error"]
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        raw.sendall(f"POST /api/ratings/alice HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n"
                    "Content-Type: application/json\r\n\r\n".encode())  # fmt: skip
        reply = raw.recv(4096).decode()
    assert reply.startswith("HTTP/1.0 411") or reply.startswith("HTTP/1.1 411")
    assert "Content-Length" in reply


TRAVERSALS = [
    "/key.json", "/../key.json", "/study/key.json", "/packet/../key.json", "/api/cards/../../key.json",
    "/api/cards/1/../../../key.json", "/%2e%2e/key.json", "/api/cards/%2e%2e%2f%2e%2e%2fkey.json",
    "/manifest.json", "/cards/card-001.html", "//etc/passwd", "/api/ratings/../../study/key",
]  # fmt: skip


@pytest.mark.parametrize("path", TRAVERSALS)
def test_the_key_is_never_served(served, path):
    running, _, key_path, _ = served
    status, data = running.request("GET", path)
    assert status in (400, 404)
    key_text = key_path.read_text()
    assert key_text not in data.decode(errors="replace")
    assert b'"arm"' not in data and b"transcoder" not in data


def test_ratings_of_another_packet_are_not_overwritten(served, tmp_path):
    running, _, _, ratings_dir = served
    ratings_dir.mkdir(parents=True, exist_ok=True)
    other = {"format": 1, "rater": "carol", "packet_id": "0" * 64, "ratings": {"1": {"rating": "no"}}}
    (ratings_dir / "carol.json").write_text(json.dumps(other))
    status, error = running.json("POST", "/api/ratings/carol", {"card": 1, "rating": "yes"})
    assert status == 409 and "another packet" in error["error"]
    assert json.loads((ratings_dir / "carol.json").read_text()) == other
