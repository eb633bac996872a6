"""Blinding: the packet holds no arm, index or activation; the key is checked at unblinding."""

import json
import re
from html.parser import HTMLParser

import pytest

from transcoder_lab.paths import study_key_file, study_packet_dir, study_scan_file
from transcoder_lab.study.packet import KeyTamperedError, load_packet, load_scan, sha256_file, unblind

from helpers.study_packets import synthetic_packet


def test_unblinding_returns_the_key_and_detects_a_tampered_one(tmp_path):
    packet, key_path = synthetic_packet(tmp_path, n_cards=6)
    assert packet.packet_id == sha256_file(key_path)
    key = unblind(load_packet(packet.directory), key_path)
    assert [entry["arm"] for entry in key["cards"]][:2] == ["transcoder", "sae"]

    tampered = json.loads(key_path.read_text())
    tampered["cards"][0]["arm"], tampered["cards"][1]["arm"] = "sae", "transcoder"  # swap two cards' arms
    key_path.write_text(json.dumps(tampered, indent=2) + "\n")
    with pytest.raises(KeyTamperedError, match="SHA-256 .* was changed"):
        unblind(packet, key_path)
    key_path.write_text(key_path.read_text() + " ")  # even whitespace counts
    with pytest.raises(KeyTamperedError):
        unblind(packet, key_path)


def test_a_packet_directory_that_is_not_a_packet_is_not_overwritten(tmp_path):
    (tmp_path / "study" / "packet").mkdir(parents=True)
    (tmp_path / "study" / "packet" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a packet"):
        synthetic_packet(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a study packet"):
        load_packet(tmp_path / "study" / "packet")


class VisibleText(HTMLParser):
    """Text and attributes outside token spans and token-list cells, and each <style> block."""

    def __init__(self):
        super().__init__()
        self.depth_token, self.in_style, self.text, self.attributes, self.styles = 0, False, [], [], []

    def handle_starttag(self, tag, attrs):
        self.attributes.extend(value or "" for _, value in attrs)
        classes = dict(attrs).get("class") or ""
        if self.depth_token or (tag == "span" and "tl-tok" in classes) or tag == "td":
            self.depth_token += 1
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        if self.depth_token and tag in ("span", "td"):
            self.depth_token -= 1
        self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.styles.append(data)
        elif not self.depth_token:
            self.text.append(data)


def formats(value: float) -> set[str]:
    return {f"{value:.3f}", f"{value:.4f}", f"{value:.5f}", f"{value:.6g}", f"{value:.5g}", repr(value),
            repr(float(f"{value:.6g}"))}  # fmt: skip


def test_the_tiny_packet_holds_no_arm_index_or_activation_value(tiny_study):
    cfg, _, _ = tiny_study
    packet_dir = study_packet_dir(cfg)
    key = json.loads(study_key_file(cfg).read_text())
    files = sorted(p for p in packet_dir.rglob("*") if p.is_file())
    assert {p.relative_to(packet_dir).parts[0] for p in files} == {"cards", "README.md", "manifest.json"}
    texts = {p: p.read_text() for p in files}
    everything = "\n".join(texts.values())

    # Arms: no arm name, dictionary kind or dictionary path anywhere (the package, transcoder_lab, is named).
    for pattern in (
        r"\btranscoders?\b",
        r"\bsaes?\b",
        r"mlp",
        r"\barm\b",
        r"L\d+_",
        r"l1_",
        r"dictionar",
        r"\bseed\b",
    ):
        assert not re.search(pattern, everything, re.IGNORECASE), pattern

    # Indices: not in any form a feature index is written, and the manifest holds only card numbers.
    for entry in key["cards"]:
        f = entry["feature"]
        for pattern in (
            rf"feature\W{{0,3}}{f}\b",
            rf"#{f}\b",
            rf"\[{f}\]",
            rf"\bf{f}\b",
            rf"index\W{{0,3}}{f}\b",
        ):
            assert not re.search(pattern, everything, re.IGNORECASE), pattern
    manifest = json.loads(texts[packet_dir / "manifest.json"])
    assert set(manifest) == {
        "format",
        "title",
        "profile",
        "n_cards",
        "categories",
        "instructions",
        "key_sha256",
        "cards",
    }
    assert [c["card"] for c in manifest["cards"]] == list(range(1, manifest["n_cards"] + 1))
    assert all(set(c) == {"card", "file", "sha256"} for c in manifest["cards"])

    # Cards: outside token text no digit at all, and every card carries the same style sheet.
    styles = set()
    for path, text in texts.items():
        if path.suffix != ".html":
            continue
        parser = VisibleText()
        parser.feed(text)
        assert not re.search(r"\d", "".join(parser.text)), path
        assert not any(re.search(r"\d", value) for value in parser.attributes), path
        styles.add("".join(parser.styles))
    assert len(styles) == 1

    # Activation values: the largest activations of each card's feature, written several ways.
    scan = load_scan(study_scan_file(cfg))
    for card in range(1, scan.n_cards + 1):
        _, values = scan.card(card)
        for value in values.sort(descending=True).values[:20].tolist():
            for written in formats(value):
                assert written not in everything, (card, written)
