"""Sentences of the background grammar, and the word draws every planted mechanism shares.

A sentence is a list of (piece, label name) pairs (`Pieces`). A piece starts with the space that
precedes it (GPT-2 style, " caught"), so a label boundary always falls where the tokenizer's
pre-tokenizer also cuts (before a space, between letters and punctuation, between the two-digit
groups of a year).

The background grammar (`Grammar.background_sentence`), a small probabilistic grammar:
  S  -> [PP ","] NP VP ["," (and|but|so|while) NP VP] "."
  NP -> Det Adj{0-2} Noun [PP | "that"/"which" Verb-past NP] | Pronoun
  VP -> Verb-past NP [PP] | Verb-past PP | Verb-past Adverb | was/were Adj ["and" Adj]
        | To-verb "to" Verb NP | Verb-past NP Adverb | "had" Verb-past NP
Content words are drawn with Zipf-like weights 1 / (rank + 10) over the vocabulary's lists (real
words first), so common words are real English and pseudo-words form the long tail.

Every draw goes through the one `random.Random` stream a `Grammar` holds, so a document's text
is a function of the vocabulary and the stream's seed alone.
"""

from __future__ import annotations

import bisect
import itertools
import random

from transcoder_lab.organism.lexicon import lexicon
from transcoder_lab.organism.vocabulary import Vocabulary, indefinite

Pieces = list[tuple[str, str]]  # (text, label name), e.g. (" caught", "caught/passive_caught")
BACKGROUND = "background"  # the label of background sentences (label id 0)
# Words the background grammar's templates write beyond its word lists. "will" and "have" are
# written by no template but stay reserved (pseudo-words avoid them), as they always were.
BACKGROUND_TEMPLATE_WORDS = "a an the was were and that which had to will have"


def background_fixed_words() -> tuple[str, ...]:
    """Phrases the background grammar can write besides the vocabulary's content words."""
    words = lexicon("background")
    lists = ("adverbs", "to_verbs", "subject_pronouns", "object_pronouns", "dets_singular", "dets_plural")
    return tuple(itertools.chain(*(words[name] for name in lists + ("prepositions", "conjunctions")))) + (
        BACKGROUND_TEMPLATE_WORDS,
    )


class ZipfSampler:
    """Draws from a word list with weight 1 / (rank + offset): early (real) words are common."""

    def __init__(self, n: int, offset: float = 10.0) -> None:
        self.cumulative = list(itertools.accumulate(1.0 / (rank + offset) for rank in range(n)))
        self.total = self.cumulative[-1]

    def index(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.cumulative, rng.random() * self.total)


class Grammar:
    """Word draws and background sentences from one vocabulary and one random stream."""

    def __init__(self, vocab: Vocabulary, rng: random.Random) -> None:
        self.vocab = vocab
        self.rng = rng
        self.words = lexicon("background")
        self.noun_sampler = ZipfSampler(len(vocab.nouns))
        self.verb_sampler = ZipfSampler(len(vocab.verbs))
        self.adjective_sampler = ZipfSampler(len(vocab.adjectives))
        self.surname_sampler = ZipfSampler(len(vocab.surnames), offset=30.0)

    # -- words ---------------------------------------------------------------------------------

    def noun(self, plural_form: bool = False) -> str:
        i = self.noun_sampler.index(self.rng)
        return self.vocab.noun_plurals[i] if plural_form else self.vocab.nouns[i]

    def verb_past(self) -> str:
        return self.vocab.verbs_past[self.verb_sampler.index(self.rng)]

    def verb_base(self) -> str:
        return self.vocab.verbs[self.verb_sampler.index(self.rng)]

    def adjective(self) -> str:
        return self.vocab.adjectives[self.adjective_sampler.index(self.rng)]

    def surname(self) -> str:
        return self.vocab.surnames[self.surname_sampler.index(self.rng)]

    # -- background grammar (plain word lists; punctuation is glued on by the caller) ----------

    def noun_phrase(
        self, subject: bool, simple: bool = False, allow_pronoun: bool = True
    ) -> tuple[list[str], bool]:
        """Returns (words, is_plural)."""
        rng, lists = self.rng, self.words
        if allow_pronoun and rng.random() < 0.15:
            pronoun = rng.choice(lists["subject_pronouns"] if subject else lists["object_pronouns"])
            return [pronoun], pronoun in lists["plural_pronouns"] or pronoun in ("them", "us")
        is_plural = rng.random() < 0.3
        det = rng.choice(lists["dets_plural"] if is_plural else lists["dets_singular"])
        words = [self.adjective() for _ in range(rng.choice((0, 0, 0, 1, 1, 2)))]
        words.append(self.noun(is_plural))
        if det == "a":
            det = indefinite(words[0])
        words.insert(0, det)
        if not simple:
            r = rng.random()
            if r < 0.12:
                words += self.prepositional_phrase()
            elif r < 0.2:
                words += [rng.choice(("that", "which")), self.verb_past()]
                words += self.noun_phrase(subject=False, simple=True)[0]
        return words, is_plural

    def prepositional_phrase(self) -> list[str]:
        return [self.rng.choice(self.words["prepositions"])] + self.noun_phrase(subject=False, simple=True)[0]

    def verb_phrase(self, is_plural: bool) -> list[str]:
        rng, adverbs = self.rng, self.words["adverbs"]
        r = rng.random()
        if r < 0.38:
            words = [self.verb_past()] + self.noun_phrase(subject=False)[0]
            if rng.random() < 0.2:
                words += self.prepositional_phrase()
        elif r < 0.53:
            words = [self.verb_past()] + self.prepositional_phrase()
        elif r < 0.63:
            words = [self.verb_past(), rng.choice(adverbs)]
        elif r < 0.75:
            words = ["were" if is_plural else "was", self.adjective()]
            if rng.random() < 0.25:
                words += ["and", self.adjective()]
        elif r < 0.83:
            to_verb = rng.choice(self.words["to_verbs"])
            words = [to_verb, "to", self.verb_base()] + self.noun_phrase(subject=False)[0]
        elif r < 0.91:
            words = [self.verb_past()] + self.noun_phrase(subject=False, simple=True)[0]
            words.append(rng.choice(adverbs))
        else:
            words = ["had", self.verb_past()] + self.noun_phrase(subject=False, simple=True)[0]
        return words

    def clause(self) -> list[str]:
        subject, is_plural = self.noun_phrase(subject=True)
        return subject + self.verb_phrase(is_plural)

    def background_sentence(self) -> Pieces:
        rng = self.rng
        words: list[str] = []
        if rng.random() < 0.15:
            words += self.prepositional_phrase()
            words[-1] += ","
        words += self.clause()
        if rng.random() < 0.15:
            words[-1] += ","
            words.append(rng.choice(self.words["conjunctions"]))
            words += self.clause()
        words[0] = words[0].capitalize()
        return [(" ".join(words) + ".", BACKGROUND)]
