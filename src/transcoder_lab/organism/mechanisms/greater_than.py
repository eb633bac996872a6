"""Greater-than: year spans whose second year is later than the first, within one century.

Sentence: "The <noun> <verb phrase> from the year 1732 to the year 1789." (or "from 1732 to 1789",
"between the years 1732 and 1789"): century CC uniform over 11..19, start YY uniform over 00..98,
end YY uniform over (start, 99]. Labels mark the century and two-digit groups of both years.
Prompts: "The <noun> lasted from the year {CC}{YY} to the year {CC}" for YY = 00..99, cut where the
second year's two digits come. Metric (transcoder_lab.behaviour.greater_than_scores): the
probability difference sum_{y>YY} p(y) - sum_{y<=YY} p(y) over the 100 two-digit tokens.
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

START_CENTURY, START_YY = "greater_than/start_century", "greater_than/start_yy"  # " 17", "32"
END_CENTURY, END_YY = "greater_than/end_century", "greater_than/end_yy"  # " 17", "89" (> "32")
OTHER = "greater_than/other"  # the rest of a greater-than sentence
CENTURIES: tuple[int, ...] = tuple(range(11, 20))  # years 1100-1999
TEMPLATES = {
    "organism": "The {noun} lasted from the year {cc}{yy:02d} to the year {cc}",
    "short": "The {noun} lasted from {cc}{yy:02d} to {cc}",  # the paper's GPT-2 form
}
# How each frame's form writes the two years: (before the first, between the two).
FORMS = {
    "year": (" from the year", " to the year"),
    "bare": (" from", " to"),
    "between": (" between the years", " and"),
}


@dataclass(frozen=True)
class GreaterThanPrompt:
    text: str  # "The war lasted from the year 1732 to the year 17"
    noun: str
    century: int  # 17
    yy: int  # 32; a correct continuation is a two-digit year > yy


def noun(grammar: Grammar) -> str:
    """A greater-than noun ("war", "drought") 70% of the time, else any vocabulary noun."""
    return (
        grammar.rng.choice(lexicon("greater_than")["nouns"]) if grammar.rng.random() < 0.7 else grammar.noun()
    )


def greater_than_prompts(
    cfg: CorpusConfig, seed: int, template: str = "organism", n_per_yy: int = 1, century: int | None = None
) -> list[GreaterThanPrompt]:
    """Prompts "The {noun} lasted from the year {CC}{YY} to the year {CC}" for YY = 00..99.

    template "organism" writes "from the year ... to the year ..."; "short" writes the paper's
    GPT-2 form "from {CC}{YY} to {CC}". `century` fixes CC (e.g. 17); by default it is drawn per
    prompt from the training centuries 11..19.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown greater-than template {template!r}; use one of {sorted(TEMPLATES)}")
    if century is not None and century not in CENTURIES:
        raise ValueError(f"century {century} is outside the training centuries {CENTURIES}")
    grammar = prompt_grammar(cfg, seed, "greater_than")
    prompts = []
    for yy in range(100):
        for _ in range(n_per_yy):
            word = noun(grammar)
            cc = century if century is not None else grammar.rng.choice(CENTURIES)
            text = TEMPLATES[template].format(noun=word, cc=cc, yy=yy)
            prompts.append(GreaterThanPrompt(text=text, noun=word, century=cc, yy=yy))
    return prompts


class GreaterThan(Mechanism):
    name = "greater_than"
    labels = (START_CENTURY, START_YY, END_CENTURY, END_YY, OTHER)

    def fixed_words(self) -> list[str]:
        words = lexicon("greater_than")
        return [
            *words["nouns"],
            *(verb for verb, _ in words["frames"]),
            "The from to the year years between and",
        ]

    def sentence(self, grammar: Grammar) -> Pieces:
        rng = grammar.rng
        century = rng.choice(CENTURIES)
        start_yy = rng.randrange(0, 99)  # 00..98, so that a later year in the century exists
        end_yy = rng.randrange(start_yy + 1, 100)  # uniform over (start_yy, 99]
        verb, form = rng.choice(lexicon("greater_than")["frames"])
        subject = ["The"]
        if rng.random() < 0.2:
            subject.append(grammar.adjective())
        subject.append(noun(grammar))
        lead, middle = FORMS[form]
        return [
            (" ".join(subject) + " " + verb + lead, OTHER),
            (f" {century}", START_CENTURY),
            (f"{start_yy:02d}", START_YY),
            (middle, OTHER),
            (f" {century}", END_CENTURY),
            (f"{end_yy:02d}", END_YY),
            (".", OTHER),
        ]

    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> list[GreaterThanPrompt]:
        return greater_than_prompts(corpus, seed, n_per_yy=max(1, n // 100))

    def behaviour(
        self, model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig
    ) -> dict[str, Any]:
        # Imported here: torch and transformer_lens (through behaviour) take seconds to load, and the
        # corpus stage, which only writes sentences, never measures.
        import torch

        from transcoder_lab.behaviour import greater_than_scores, last_token_logits
        from transcoder_lab.sources.tokens import two_digit_token_ids

        prompts = self.prompts(corpus, cfg.seed, cfg.n_prompts)
        logits = last_token_logits(model, [p.text for p in prompts], cfg.batch_size)
        years = torch.tensor([p.yy for p in prompts])
        return {
            "template": "The {noun} lasted from the year {CC}{YY} to the year {CC}",
            **greater_than_scores(logits, years, two_digit_token_ids(model.tokenizer)),
        }


MECHANISM = GreaterThan()
