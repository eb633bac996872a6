"""Planted mechanisms: what each adds to the organism's corpus, and how its behaviour is measured.

A mechanism is one module of this package defining `MECHANISM`, an instance of a `Mechanism`
subclass that states:
- `name` and `labels`: the ground-truth label of each role its sentences write ("citation/year"),
  in label-id order;
- `fixed_words()`: every phrase its templates and filler lists can write (pseudo-words avoid them);
- `sentence(grammar)`: one training sentence as (piece, label) pairs, drawn from the grammar's stream;
- `prompts(corpus, seed, n)`: held-out prompts of the same sentence family, cut right before the
  token whose prediction the metric measures (each with a `.text`);
- `behaviour(model, corpus, cfg)`: its metric on those prompts beside chance (or None for a
  contrast family that another mechanism's metric reads).

The corpus config names the mechanisms and their shares of sentences (`corpus.shares`, in draw
order): a name is a module of this package, or else any importable module path (a mechanism kept
outside the package, as tests/organism/induction_mechanism.py). Adding a mechanism is one module
plus its share in the profile's corpus config; see README "Add a planted mechanism".

`mechanisms_of` loads the mechanisms a corpus config names and `build_vocabulary` draws the
vocabulary their words shape; both live here, below organism/corpus.py, so that a mechanism's
prompts (`prompt_grammar`) can use the corpus's vocabulary without importing the corpus generator.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from transcoder_lab.organism.grammar import Grammar, Pieces, background_fixed_words
from transcoder_lab.organism.vocabulary import Vocabulary, derive_seed, make_vocabulary, words_of

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from transcoder_lab.config import BehaviourConfig, CorpusConfig


class Prompt(Protocol):
    text: str


@dataclass(frozen=True)
class SemicolonPrompt:
    """A sentence cut right after a semicolon: citation's prompts and those of its prose contrast."""

    text: str  # ends with ";"
    kind: str  # "citation" (a surname should follow) or "prose" (a lowercase clause follows)


class Mechanism(ABC):
    """One planted mechanism (module docstring)."""

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]

    @abstractmethod
    def fixed_words(self) -> Sequence[str]:
        """Phrases its templates and filler lists can write (counted among the corpus's words)."""

    def reserved_words(self) -> Sequence[str]:
        """Further words no pseudo-word may take (e.g. "catch" beside a planted "caught")."""
        return ()

    @abstractmethod
    def sentence(self, grammar: Grammar) -> Pieces:
        """One training sentence drawn from `grammar`'s stream."""

    @abstractmethod
    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> Sequence[Prompt]:
        """`n` held-out prompts drawn with `seed` (and the vocabulary of `corpus.seed`)."""

    def behaviour(
        self, model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig
    ) -> dict[str, Any] | None:
        """Its behavioural metric with chance level, or None when it has none of its own."""
        return None


def prompt_grammar(corpus: CorpusConfig, seed: int, name: str) -> Grammar:
    """A grammar over the corpus's vocabulary with a stream of its own for `name`'s prompts."""
    return Grammar(build_vocabulary(corpus), random.Random(derive_seed(seed, name)))


def text_through(pieces: Pieces, label: str) -> str:
    """The text of `pieces` up to and including the last piece with `label`."""
    index = max(i for i, (_, lab) in enumerate(pieces) if lab == label)
    return "".join(text for text, _ in pieces[: index + 1])


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a parent package is missing, or an empty name
        return False


def load_mechanism(name: str) -> Mechanism:
    """The `MECHANISM` of module `transcoder_lab.organism.mechanisms.<name>`, or else of module `name`."""
    path = next((p for p in (f"{__name__}.{name}", name) if _exists(p)), None)
    mechanism = getattr(importlib.import_module(path), "MECHANISM", None) if path else None
    if not isinstance(mechanism, Mechanism):
        where = f"module {path} defines no MECHANISM" if path else "no module of that name exists"
        raise ValueError(
            f"corpus.shares names the planted mechanism {name!r}, but {where}. Add "
            f"src/transcoder_lab/organism/mechanisms/{name}.py defining MECHANISM = <a Mechanism "
            "subclass>() (see transcoder_lab.organism.mechanisms), or name an importable module."
        )
    return mechanism


def mechanisms_of(cfg: CorpusConfig) -> list[Mechanism]:
    """The planted mechanisms `cfg.shares` names, in its (draw) order."""
    return [load_mechanism(name) for name in cfg.shares]


def build_vocabulary(cfg: CorpusConfig) -> Vocabulary:
    """The vocabulary for `cfg`: depends on cfg.seed, the word counts and the mechanisms' words."""
    mechanisms = mechanisms_of(cfg)
    fixed = words_of(background_fixed_words()).union(*(words_of(m.fixed_words()) for m in mechanisms))
    reserved = frozenset(word for m in mechanisms for word in m.reserved_words())
    counts = (cfg.n_nouns, cfg.n_verbs, cfg.n_adjectives, cfg.n_surnames)
    return make_vocabulary(cfg.seed, *counts, frozenset(fixed), reserved)


def surnames(cfg: CorpusConfig) -> list[str]:
    """The surnames cited in the corpus of `cfg` (a surname follows a citation semicolon)."""
    return list(build_vocabulary(cfg).surnames)
