"""Synthetic packets for the study's tests: no model needed."""

from pathlib import Path

from transcoder_lab.study.packet import Packet, write_packet


def synthetic_packet(root: Path, n_cards: int = 4, profile: str = "synthetic") -> tuple[Packet, Path]:
    """(packet, key path): card k shows "Card text k"; odd cards are transcoder features, even SAE."""
    cards = [
        f'<div class="tl-card"><h3>Feature</h3><p class="text">Card text {k}</p></div>'
        for k in range(1, n_cards + 1)
    ]
    key = {
        "format": 1,
        "profile": profile,
        "seed": 0,
        "arms": {"transcoder": {"layer": 0}, "sae": {"layer": 0}},
        "cards": [
            {"card": k, "arm": "transcoder" if k % 2 else "sae", "feature": 1000 + k}
            for k in range(1, n_cards + 1)
        ],
    }
    key_path = root / "study" / "key.json"
    packet = write_packet(root / "study" / "packet", key_path, cards, key, profile)
    return packet, key_path
