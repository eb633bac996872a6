"""Ratings files: names, values and round trips."""

import json

import pytest

from transcoder_lab.study.ratings import (
    Rating,
    RatingError,
    RatingsFile,
    check_rater_name,
    check_rating,
    load_ratings,
)


def test_round_trip(tmp_path):
    ratings = RatingsFile("alice", "abc", {2: Rating("maybe", True, "hm", "t"), 1: Rating("yes")})
    ratings.save(tmp_path / "alice.json")
    raw = json.loads((tmp_path / "alice.json").read_text())
    assert list(raw["ratings"]) == ["1", "2"]
    back = load_ratings(tmp_path / "alice.json", n_cards=2)
    assert back.ratings == ratings.ratings and back.packet_id == "abc"


@pytest.mark.parametrize("name", ["", "a b", "../x", "x" * 41, "ground_truth", "_x", 7])
def test_bad_names(name):
    with pytest.raises(RatingError):
        check_rater_name(name)


def test_bad_values_and_files(tmp_path):
    with pytest.raises(RatingError, match="one of yes, maybe, no"):
        check_rating("YES", False, "")
    path = tmp_path / "x.json"
    path.write_text(
        json.dumps({"format": 1, "rater": "x", "packet_id": "p", "ratings": {"9": {"rating": "no"}}})
    )
    with pytest.raises(RatingError, match="outside 1..4"):
        load_ratings(path, n_cards=4)
    path.write_text("{")
    with pytest.raises(RatingError, match="not a valid ratings file"):
        load_ratings(path)
