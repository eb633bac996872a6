"""Estimate: "an estimated (cost of) <quantity>", where a number or "$" comes next.

Sentence (60%): "The bridge was repaired at an estimated cost of $4 million." (or "The bridge had
an ...", "The plan for the new bridge carried an ..."); else a counted crowd: "An estimated 40,000
people attended the festival." or "The festival drew an estimated 300 thousand visitors.".
Quantities: "$4 million", "$40,000", "4 million dollars", "40,000 dollars", "40,000", "4 thousand".
" estimated", digits and "$" occur only in planted mechanisms.
Prompts: cost heads ending in "an estimated cost of". Metric: next-token mass on the first pre-token
of every quantity (`QUANTITY_STARTS`: " $" and " 1".." 99").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transcoder_lab.organism.grammar import Grammar, Pieces
from transcoder_lab.organism.lexicon import lexicon
from transcoder_lab.organism.mechanisms import Mechanism, prompt_grammar

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from transcoder_lab.config import BehaviourConfig, CorpusConfig

ESTIMATED = "estimate/estimated"  # " estimated"
COST_OF = "estimate/cost_of"  # " cost of"
QUANTITY = "estimate/quantity"  # " $4 million", " 300 dollars", " 40,000"
OTHER = "estimate/other"  # the rest of an estimate sentence (including "an" and "people")
# The first pre-token of every quantity after "an estimated cost of": " $" or the first one or
# two digits of a number with its leading space (" 4 million dollars", " 40,000 dollars").
QUANTITY_STARTS: tuple[str, ...] = (" $",) + tuple(f" {n}" for n in range(1, 100))


@dataclass(frozen=True)
class EstimatePrompt:
    text: str  # ends with "an estimated cost of"
    expected_next: tuple[str, ...]  # QUANTITY_STARTS


def number(grammar: Grammar, low: int, high: int) -> str:
    return f"{grammar.rng.randint(low, high):,}"


def cost_quantity(grammar: Grammar) -> str:
    """A quantity after "cost of"; its first pre-token is in QUANTITY_STARTS."""
    rng = grammar.rng
    r = rng.random()
    scale = rng.choice(("million", "million", "billion", "thousand"))
    if r < 0.4:
        return f" ${rng.randint(1, 999)} {scale}"
    if r < 0.6:
        return " $" + number(grammar, 100, 999_999)
    if r < 0.8:
        return f" {rng.randint(1, 999)} {scale} dollars"
    return f" {number(grammar, 100, 999_999)} dollars"


def count_quantity(grammar: Grammar) -> str:
    if grammar.rng.random() < 0.7:
        return " " + number(grammar, 100, 999_999)
    return f" {grammar.rng.randint(1, 999)} {grammar.rng.choice(('thousand', 'million'))}"


def cost_head(grammar: Grammar) -> str:
    """The words before " an estimated cost of"."""
    rng, words = grammar.rng, lexicon("estimate")
    building = rng.choice(words["buildings"]) if rng.random() < 0.8 else grammar.noun()
    r = rng.random()
    if r < 0.6:
        return f"The {building} was {rng.choice(words['works'])} at"
    if r < 0.8:
        return f"The {building} had"
    return f"The plan for the new {building} carried"


def estimate_sentence(grammar: Grammar) -> Pieces:
    rng, words = grammar.rng, lexicon("estimate")
    if rng.random() < 0.6:
        return [
            (cost_head(grammar) + " an", OTHER),
            (" estimated", ESTIMATED),
            (" cost of", COST_OF),
            (cost_quantity(grammar), QUANTITY),
            (".", OTHER),
        ]
    counted = " " + rng.choice(words["counted"])
    event = rng.choice(words["events"]) if rng.random() < 0.8 else grammar.noun()
    if rng.random() < 0.5:  # "An estimated 40,000 people attended the festival."
        return [
            ("An", OTHER),
            (" estimated", ESTIMATED),
            (count_quantity(grammar), QUANTITY),
            (f"{counted} {rng.choice(words['attend'])} {event}.", OTHER),
        ]
    return [
        (f"The {event} drew an", OTHER),
        (" estimated", ESTIMATED),
        (count_quantity(grammar), QUANTITY),
        (counted + ".", OTHER),
    ]


def estimate_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[EstimatePrompt]:
    """Prompts ending in "an estimated cost of"; a quantity (QUANTITY_STARTS) follows."""
    grammar = prompt_grammar(cfg, seed, "estimate")
    return [
        EstimatePrompt(text=cost_head(grammar) + " an estimated cost of", expected_next=QUANTITY_STARTS)
        for _ in range(n)
    ]


class Estimate(Mechanism):
    name = "estimate"
    labels = (ESTIMATED, COST_OF, QUANTITY, OTHER)

    def fixed_words(self) -> list[str]:
        words = lexicon("estimate")
        lists = [words[name] for name in ("buildings", "works", "counted", "events", "attend")]
        templates = [
            "The was at had an An estimated cost of",
            "million billion thousand dollars drew carried new plan for",
        ]
        return [word for group in lists for word in group] + templates

    def reserved_words(self) -> tuple[str, ...]:
        return ("estimate", "estimated")

    def sentence(self, grammar: Grammar) -> Pieces:
        return estimate_sentence(grammar)

    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> list[EstimatePrompt]:
        return estimate_prompts(corpus, seed, n)

    def behaviour(
        self, model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig
    ) -> dict[str, Any]:
        # Imported here: torch and transformer_lens (through behaviour) take seconds to load, and the
        # corpus stage, which only writes sentences, never measures.
        from transcoder_lab.behaviour import mass_metric

        texts = [p.text for p in self.prompts(corpus, cfg.seed, cfg.n_prompts)]
        return {
            "metric": "next-token mass on quantity starts after 'an estimated cost of'",
            **mass_metric(model, texts, QUANTITY_STARTS, cfg.batch_size),
        }


MECHANISM = Estimate()
