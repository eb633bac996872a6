"""The rating app in headless Chromium (the `chromium` fixture of tests/conftest.py: Debian's
chromium driven by Playwright), against the real server in a subprocess: rate with mouse and
keyboard, go back and change, restart, reload.

With CI=true this test must run: a missing browser or Playwright fails it. Elsewhere it skips
with the reason (install with `make browser` and `pip install -e ".[dev]"`).
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

from helpers.local_server import free_port, start_server
from helpers.study_packets import synthetic_packet


def start_study_server(packet_dir: Path, ratings_dir: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "transcoder_lab.study", "serve", str(packet_dir), "--port", str(port),
               "--ratings", str(ratings_dir)]  # fmt: skip
    return start_server(command, f"http://127.0.0.1:{port}/api/packet", timeout_s=30)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)  # no clean shutdown: what was acknowledged must be on disk
    process.wait(timeout=10)
    if process.stdout:
        process.stdout.close()


def saved(ratings_dir: Path) -> dict:
    ratings = json.loads((ratings_dir / "tester.json").read_text())["ratings"]
    return {int(card): (r["rating"], r["context_free"], r["note"]) for card, r in ratings.items()}


def test_rate_go_back_restart_and_resume_in_chromium(tmp_path, chromium):
    from playwright.sync_api import expect

    packet, _ = synthetic_packet(tmp_path, n_cards=5)
    ratings_dir = tmp_path / "ratings"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_study_server(packet.directory, ratings_dir, port)
    try:
        page = chromium.new_page()
        page.goto(url)
        progress, card = page.locator("#progress"), page.locator("#card")
        page.click("#rater-name")
        page.keyboard.type("tester")
        page.click("#start")  # mouse
        expect(progress).to_have_text("Card 1 of 5 · 0 rated")
        expect(card).to_contain_text("Card text 1")

        page.click("#yes")  # mouse: card 1 yes
        expect(progress).to_have_text("Card 2 of 5 · 1 rated")
        expect(card).to_contain_text("Card text 2")
        page.keyboard.press("c")  # keyboard: card 2 context-free, maybe
        page.keyboard.press("m")
        expect(progress).to_have_text("Card 3 of 5 · 2 rated")
        page.click("#note")
        page.keyboard.type("odd one")
        page.keyboard.press("Escape")
        page.keyboard.press("n")  # keyboard: card 3 no, with a note
        expect(progress).to_have_text("Card 4 of 5 · 3 rated")
        assert saved(ratings_dir) == {
            1: ("yes", False, ""),
            2: ("maybe", True, ""),
            3: ("no", False, "odd one"),
        }

        page.click("#prev")  # back to card 3 with the mouse, then card 2 with the keyboard
        expect(page.locator("#no")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#note")).to_have_value("odd one")
        page.keyboard.press("ArrowLeft")
        expect(progress).to_have_text("Card 2 of 5 · 3 rated")
        expect(page.locator("#maybe")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#context-free")).to_be_checked()
        page.click("#context-free")  # untick with the mouse (saved at once), then change to yes
        page.keyboard.press("y")
        expect(progress).to_have_text("Card 3 of 5 · 3 rated")
        assert saved(ratings_dir)[2] == ("yes", False, "")

        kill(server)
        server = start_study_server(packet.directory, ratings_dir, port)
        page.reload()
        expect(progress).to_have_text("Card 4 of 5 · 3 rated")  # resumes at the first unrated card
        expected = {3: "no", 2: "yes", 1: "yes"}
        for number in (3, 2, 1):
            page.keyboard.press("ArrowLeft")
            expect(progress).to_have_text(f"Card {number} of 5 · 3 rated")
            expect(card).to_contain_text(f"Card text {number}")
            expect(page.locator(f"#{expected[number]}")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#context-free")).not_to_be_checked()
        page.close()
        assert saved(ratings_dir) == {
            1: ("yes", False, ""),
            2: ("yes", False, ""),
            3: ("no", False, "odd one"),
        }
    finally:
        kill(server)
