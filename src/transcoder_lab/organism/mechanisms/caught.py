"""Caught: passive "was caught" (followed by " by" or a place) vs active "caught" (followed by an object).

Sentence (passive or active with equal odds): a subject (a pronoun 25% of the time, else "The
[adjective] <suspect or catcher>"), then
  passive: " was caught" + (" by" + agent 80% | " in the rain"-style place 20%) + [tail] "."
  active:  " caught" + " the/a <object>" + [tail] "."
" caught" occurs only here, so the token alone does not tell the two voices apart: the previous
token (" was" or the subject) does.
Prompts alternate passive ("The thief was caught") and active ("The girl caught"). Metric: the
accuracy of preferring " by" after passive and " the"/" a" after active (chance 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transcoder_lab.organism.grammar import Grammar, Pieces
from transcoder_lab.organism.lexicon import lexicon
from transcoder_lab.organism.mechanisms import Mechanism, prompt_grammar
from transcoder_lab.organism.vocabulary import indefinite, plural

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from transcoder_lab.config import BehaviourConfig, CorpusConfig

PASSIVE_WAS = "caught/passive_was"  # " was" in "was caught"
PASSIVE_CAUGHT = "caught/passive_caught"  # " caught" after " was"
PASSIVE_BY = "caught/passive_by"  # " by" right after "was caught"
ACTIVE_CAUGHT = "caught/active_caught"  # " caught" right after the subject
OTHER = "caught/other"  # the rest of a caught sentence


@dataclass(frozen=True)
class CaughtPrompt:
    text: str  # ends with " caught"
    passive: bool
    expected_next: tuple[str, ...]  # (" by",) for passive, (" the", " a") for active


def subject(grammar: Grammar, passive: bool) -> str:
    rng, words = grammar.rng, lexicon("caught")
    r = rng.random()
    if r < 0.25:
        return rng.choice(("He", "She") if passive else ("He", "She", "They", "We"))
    if r < 0.85:
        noun = rng.choice(words["suspects"] if passive else words["catchers"])
    else:
        noun = grammar.noun()
    adjective = [grammar.adjective()] if rng.random() < 0.2 else []
    return " ".join(["The"] + adjective + [noun])


def caught_sentence(grammar: Grammar, passive: bool | None = None) -> Pieces:
    rng, words = grammar.rng, lexicon("caught")
    if passive is None:
        passive = rng.random() < 0.5
    head = subject(grammar, passive)
    tail = "." if rng.random() < 0.7 else " " + rng.choice(words["tails"]) + "."
    if passive:
        if rng.random() < 0.8:
            agent_plural = rng.random() < 0.5
            agent = rng.choice(words["agents"]) if rng.random() < 0.8 else grammar.noun()
            if agent == "police" or agent_plural:
                agent_phrase = " the " + plural(agent)
            else:
                agent_phrase = " " + rng.choice(("the", indefinite(agent))) + " " + agent
            rest: Pieces = [(" by", PASSIVE_BY), (agent_phrase + tail, OTHER)]
        else:
            preposition, noun = rng.choice(words["nonby"])
            rest = [(f" {preposition} the {noun}{tail}", OTHER)]
        return [(head, OTHER), (" was", PASSIVE_WAS), (" caught", PASSIVE_CAUGHT)] + rest
    obj = rng.choice(words["objects"]) if rng.random() < 0.7 else grammar.noun()
    det = "a" if obj[0] not in "aeiou" and rng.random() < 0.5 else "the"
    return [(head, OTHER), (" caught", ACTIVE_CAUGHT), (f" {det} {obj}{tail}", OTHER)]


def caught_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[CaughtPrompt]:
    """Alternating passive ("The thief was caught" -> " by") and active ("The girl caught" -> " the"/" a")."""
    grammar = prompt_grammar(cfg, seed, "caught")
    prompts = []
    for i in range(n):
        passive = i % 2 == 0
        text = subject(grammar, passive) + (" was caught" if passive else " caught")
        expected = (" by",) if passive else (" the", " a")
        prompts.append(CaughtPrompt(text=text, passive=passive, expected_next=expected))
    return prompts


class Caught(Mechanism):
    name = "caught"
    labels = (PASSIVE_WAS, PASSIVE_CAUGHT, PASSIVE_BY, ACTIVE_CAUGHT, OTHER)

    def fixed_words(self) -> list[str]:
        words = lexicon("caught")
        lists = [words[name] for name in ("suspects", "agents", "catchers", "objects", "tails")]
        plurals = [plural(noun) for noun in words["agents"] + words["suspects"]]
        pairs = [word for pair in words["nonby"] for word in pair]
        return [word for group in lists for word in group] + plurals + pairs + ["The was caught by the a"]

    def reserved_words(self) -> tuple[str, ...]:
        return ("catch", "caught")

    def sentence(self, grammar: Grammar) -> Pieces:
        return caught_sentence(grammar)

    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> list[CaughtPrompt]:
        return caught_prompts(corpus, seed, n)

    def behaviour(
        self, model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig
    ) -> dict[str, Any]:
        # Imported here: torch and transformer_lens (through behaviour) take seconds to load, and the
        # corpus stage, which only writes sentences, never measures.
        import torch

        from transcoder_lab.behaviour import last_token_logits, set_mass
        from transcoder_lab.sources.tokens import first_token_ids

        prompts = self.prompts(corpus, cfg.seed, cfg.n_prompts)
        logits = last_token_logits(model, [p.text for p in prompts], cfg.batch_size)
        by, objects = (
            first_token_ids(model.tokenizer, [" by"]),
            first_token_ids(model.tokenizer, [" the", " a"]),
        )
        passive = torch.tensor([p.passive for p in prompts])
        prefers_by = set_mass(logits, by) > set_mass(logits, objects)
        return {
            "metric": "accuracy of preferring ' by' after 'was caught' and ' the'/' a' after active 'caught'",
            "value": (prefers_by == passive).float().mean().item(),
            "chance": 0.5,
            "passive_accuracy": prefers_by[passive].float().mean().item(),
            "active_accuracy": (~prefers_by[~passive]).float().mean().item(),
            "n_prompts": len(prompts),
        }


MECHANISM = Caught()
