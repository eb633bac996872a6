"""Prose semicolons: two clauses of ordinary prose joined by ";", the contrast class of citation.

Sentence: "<clause>; [linker,] <clause>." from the background grammar (a linker such as "however"
opens the second clause 15% of the time). After this ";" a lowercase clause follows, after a
citation's ";" a surname, so a feature that fires on both is not a citation feature. It has no
metric of its own: citation.py measures surname mass after these prompts as its contrast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transcoder_lab.organism.grammar import Grammar, Pieces
from transcoder_lab.organism.lexicon import lexicon
from transcoder_lab.organism.mechanisms import Mechanism, SemicolonPrompt, prompt_grammar, text_through

if TYPE_CHECKING:
    from transcoder_lab.config import CorpusConfig

SEMICOLON = "prose/semicolon"  # ";" joining two clauses of ordinary prose
OTHER = "prose/other"  # the rest of a prose-semicolon sentence


def prose_semicolon_sentence(grammar: Grammar) -> Pieces:
    first = grammar.clause()
    first[0] = first[0].capitalize()
    second = grammar.clause()
    if grammar.rng.random() < 0.15:
        second = [grammar.rng.choice(lexicon("prose_semicolon")["linkers"]) + ","] + second
    return [(" ".join(first), OTHER), (";", SEMICOLON), (" " + " ".join(second) + ".", OTHER)]


def prose_semicolon_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[SemicolonPrompt]:
    """Prose sentences cut right after the semicolon: "The river was cold;"."""
    grammar = prompt_grammar(cfg, seed, "prose")
    return [
        SemicolonPrompt(text=text_through(prose_semicolon_sentence(grammar), SEMICOLON), kind="prose")
        for _ in range(n)
    ]


class ProseSemicolon(Mechanism):
    name = "prose_semicolon"
    labels = (SEMICOLON, OTHER)

    def fixed_words(self) -> tuple[str, ...]:
        return lexicon("prose_semicolon")["linkers"]

    def sentence(self, grammar: Grammar) -> Pieces:
        return prose_semicolon_sentence(grammar)

    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> list[SemicolonPrompt]:
        return prose_semicolon_prompts(corpus, seed, n)


MECHANISM = ProseSemicolon()
