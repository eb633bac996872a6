"""Ratings files: one JSON per rater, written whole and atomically after every change.

`ratings/<profile>/<rater>.json` (humans, via the web app) or the ground-truth rater's file:

    {"format": 1, "rater": "alice", "packet_id": "<the packet's key SHA-256>",
     "ratings": {"7": {"rating": "yes", "context_free": false, "note": "", "saved_at": "..."}}}

Card numbers are the packet's (1..N, as strings: JSON keys). `packet_id` ties a file to the
packet it was made on; the analysis skips (and reports) a file made on another packet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transcoder_lab import io

FORMAT_VERSION = 1
CATEGORIES = ("yes", "maybe", "no")
RATER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
GROUND_TRUTH = "ground_truth"  # reserved for the automatic rater
MAX_NOTE_CHARS = 2000


class RatingError(ValueError):
    """A rating or ratings file that does not follow the format; the message says what is wrong."""


@dataclass
class Rating:
    rating: str
    context_free: bool = False
    note: str = ""
    saved_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "rating": self.rating,
            "context_free": self.context_free,
            "note": self.note,
            "saved_at": self.saved_at,
        }


@dataclass
class RatingsFile:
    rater: str
    packet_id: str
    ratings: dict[int, Rating] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the ground-truth rater's evidence

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "rater": self.rater,
            "packet_id": self.packet_id,
            "ratings": {str(card): self.ratings[card].to_json() for card in sorted(self.ratings)},
            **self.extra,
        }

    def save(self, path: str | Path) -> None:
        io.write_json(path, self.to_json())


def check_rater_name(name: Any, allow_reserved: bool = False) -> str:
    if not isinstance(name, str) or not RATER_NAME.fullmatch(name):
        raise RatingError(
            "the rater name must be 1-40 characters of letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit; got {name!r}"
        )
    if name == GROUND_TRUTH and not allow_reserved:
        raise RatingError(
            f"the rater name '{GROUND_TRUTH}' is reserved for the automatic rater; pick another"
        )
    return name


def check_rating(value: Any, context_free: Any, note: Any) -> Rating:
    if value not in CATEGORIES:
        raise RatingError(f"rating must be one of {', '.join(CATEGORIES)}; got {value!r}")
    if not isinstance(context_free, bool):
        raise RatingError(f"context_free must be true or false; got {context_free!r}")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise RatingError(f"note must be text of at most {MAX_NOTE_CHARS} characters")
    return Rating(value, context_free, note)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_ratings(path: str | Path, n_cards: int | None = None) -> RatingsFile:
    """Read and check one ratings file (card numbers within 1..n_cards when given)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT_VERSION:
            raise RatingError(f"format is {raw.get('format')!r}, expected {FORMAT_VERSION}")
        rater = check_rater_name(raw["rater"], allow_reserved=True)
        ratings = {}
        for card, entry in raw["ratings"].items():
            number = int(card)
            if n_cards is not None and not 1 <= number <= n_cards:
                raise RatingError(f"card {number} is outside 1..{n_cards}")
            rating = check_rating(entry["rating"], entry.get("context_free", False), entry.get("note", ""))
            rating.saved_at = str(entry.get("saved_at", ""))
            ratings[number] = rating
        extra = {k: v for k, v in raw.items() if k not in ("format", "rater", "packet_id", "ratings")}
        return RatingsFile(rater, str(raw["packet_id"]), ratings, extra)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise RatingError(f"{path} is not a valid ratings file: {error}") from error
