"""The organism's vocabulary: real English words first, then pseudo-English words, per word class.

Algorithm (`make_vocabulary`, deterministic in the seed, the word counts and the fixed words only)
1. Start from the real words of `lexicon/background.yaml`: nouns (with plurals), verbs (with past
   tenses), adjectives and surnames.
2. Top each class up to its count with pseudo-words built from onset + vowel + coda syllables plus,
   sometimes, a class-typical suffix ("-ous" for adjectives, "-son" for surnames, ...), drawn from
   one `random.Random` stream. A candidate is kept only if it and its derived forms (plural, past
   tense) differ, case-insensitively, from every word already taken: the real words, every word a
   template or filler list can write (`fixed_words`) and the `reserved` words. Pseudo verbs take a
   regular "-ed" past; surnames are capitalised.
3. Real words come first in each class; sentences draw words with Zipf-like weights (grammar.py),
   so common words are real English and the pseudo-words form a long tail, as in natural text.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from transcoder_lab.organism.lexicon import lexicon


def derive_seed(seed: int, name: str) -> int:
    """A 63-bit seed for a named sub-stream, stable across Python versions and processes."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def plural(noun: str) -> str:
    irregular = lexicon("background")["irregular_plurals"]
    if noun in irregular:
        return irregular[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def regular_past(verb: str) -> str:
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "ed"


def indefinite(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def words_of(phrases: Sequence[str]) -> set[str]:
    """The lower-cased words of some phrases ("et al." -> {"et", "al"})."""
    return {word.lower() for phrase in phrases for word in re.findall(r"[A-Za-z]+", phrase)}


@dataclass(frozen=True)
class Vocabulary:
    """The words of the corpus for one seed: real words first, then pseudo-words."""

    nouns: tuple[str, ...]
    noun_plurals: tuple[str, ...]  # aligned with nouns
    verbs: tuple[str, ...]  # base forms
    verbs_past: tuple[str, ...]  # aligned with verbs
    adjectives: tuple[str, ...]
    surnames: tuple[str, ...]  # capitalised
    n_pseudo: int  # how many of the above lemmas are generated pseudo-words
    fixed_words: frozenset[str]  # lower-cased words of the templates and filler lists

    def distinct_words(self) -> set[str]:
        """Every word form the generator can write (case-folded except surnames)."""
        words = set(self.nouns) | set(self.noun_plurals) | set(self.verbs) | set(self.verbs_past)
        return words | set(self.adjectives) | set(self.surnames) | self.fixed_words


def _pseudo_word(rng: random.Random, kind: str) -> str:
    parts_of = lexicon("pseudo_words")
    # Suffixed words get fewer syllables so that pseudo-words stay short and pronounceable.
    use_suffix = rng.random() < parts_of["suffix_probability"][kind]
    suffix = rng.choice(parts_of["suffixes"][kind]) if use_suffix else ""
    n_syllables = rng.choice((1, 1, 2) if suffix else (1, 2, 2, 3))
    parts = []
    for i in range(n_syllables):
        if i == 0:
            onset = "" if rng.random() < 0.12 else rng.choice(parts_of["onsets"])
        else:  # a medial syllable always has a simple onset, so two nuclei never touch
            onset = rng.choice(parts_of["medial_onsets"])
        coda = rng.choice(parts_of["codas_final"] if i == n_syllables - 1 else parts_of["codas_medial"])
        parts.append(onset + rng.choice(parts_of["nuclei"]) + coda)
    word = "".join(parts)
    if suffix and word[-1] in "aeiou" and suffix[0] in "aeiouy":
        word = word[:-1]  # "bra" + "ous" -> "brous", not "braous"
    return word + suffix


def _forms(word: str, kind: str) -> tuple[str, ...]:
    if kind == "noun":
        return (word, plural(word))
    if kind == "verb":
        return (word, regular_past(word))
    return (word,)


def _top_up(real: Sequence[str], n: int, kind: str, rng: random.Random, used: set[str]) -> list[str]:
    """The first n real words, then fresh pseudo-words until there are n (real words come first)."""
    words = list(real[:n])
    attempts = 0
    while len(words) < n:
        attempts += 1
        if attempts > 200 * n:
            raise RuntimeError(f"could not generate {n} distinct pseudo-{kind}s")
        word = _pseudo_word(rng, kind)
        forms = _forms(word, kind)
        if not 3 <= len(word) <= 10 or re.search(r"(.)\1\1", word) or any(f in used for f in forms):
            continue
        used.update(forms)
        words.append(word)
    return words


@functools.lru_cache(maxsize=8)
def make_vocabulary(
    seed: int,
    n_nouns: int,
    n_verbs: int,
    n_adjectives: int,
    n_surnames: int,
    fixed_words: frozenset[str],
    reserved: frozenset[str],
) -> Vocabulary:
    """The vocabulary for these counts (module docstring); `fixed_words` and `reserved` are kept out
    of the pseudo-words, and `fixed_words` count among the vocabulary's distinct words."""
    if min(n_nouns, n_verbs, n_adjectives, n_surnames) < 2:
        raise ValueError("corpus.n_nouns, n_verbs, n_adjectives and n_surnames must each be >= 2")
    real = lexicon("background")
    rng = random.Random(derive_seed(seed, "vocabulary"))
    real_verbs = real["verbs"]  # base -> past, in file order
    used = set(real["nouns"]) | set(real["adjectives"]) | {s.lower() for s in real["surnames"]}
    used |= set(real_verbs) | set(real_verbs.values()) | {plural(n) for n in real["nouns"]}
    used |= fixed_words | reserved

    nouns = _top_up(real["nouns"], n_nouns, "noun", rng, used)
    verb_bases = _top_up(list(real_verbs), n_verbs, "verb", rng, used)
    adjectives = _top_up(real["adjectives"], n_adjectives, "adjective", rng, used)
    surnames_lower = _top_up([s.lower() for s in real["surnames"]], n_surnames, "surname", rng, used)
    n_real = (
        min(n_nouns, len(real["nouns"]))
        + min(n_verbs, len(real_verbs))
        + min(n_adjectives, len(real["adjectives"]))
        + min(n_surnames, len(real["surnames"]))
    )
    return Vocabulary(
        nouns=tuple(nouns),
        noun_plurals=tuple(plural(n) for n in nouns),
        verbs=tuple(verb_bases),
        verbs_past=tuple(real_verbs.get(v, regular_past(v)) for v in verb_bases),
        adjectives=tuple(adjectives),
        surnames=tuple(s.capitalize() for s in surnames_lower),
        n_pseudo=n_nouns + n_verbs + n_adjectives + n_surnames - n_real,
        fixed_words=frozenset(fixed_words),
    )
