"""A worked example of a planted mechanism kept outside the package: induction (copying).

Sentence: "The tag read <w1> <w2> <w3>, and the copy read <w1> <w2> <w3>." with three words drawn
uniformly from the vocabulary's nouns and adjectives (uniformly, so the long tail of pseudo-words is
as likely as "river": only copying predicts the second sequence). Labels: the first sequence, the
repeated one, and the rest.
Prompts: the sentence cut after the first repeated word; the metric is the next-token probability of
the second word's first token (what an induction head would copy), beside chance 1 / d_vocab.

To plant it, name the module in the corpus config with its share of sentences:
    profile.corpus.shares: {greater_than: 0.35, ..., induction_mechanism: 0.05}
(inside the package, the same file would go to src/transcoder_lab/organism/mechanisms/induction.py
and be named `induction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transcoder_lab.organism.grammar import Grammar, Pieces
from transcoder_lab.organism.mechanisms import Mechanism, prompt_grammar, text_through

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from transcoder_lab.config import BehaviourConfig, CorpusConfig

FIRST, REPEAT, OTHER = "induction/first", "induction/repeat", "induction/other"
N_WORDS = 3


@dataclass(frozen=True)
class InductionPrompt:
    text: str  # "... and the copy read <w1>"
    expected_next: str  # " <w2>"


def sequence(grammar: Grammar) -> list[str]:
    words = grammar.vocab.nouns + grammar.vocab.adjectives
    return [words[grammar.rng.randrange(len(words))] for _ in range(N_WORDS)]


def induction_sentence(grammar: Grammar) -> Pieces:
    words = " " + " ".join(sequence(grammar))
    return [
        ("The tag read", OTHER),
        (words, FIRST),
        (", and the copy read", OTHER),
        (words, REPEAT),
        (".", OTHER),
    ]


class Induction(Mechanism):
    name = "induction"
    labels = (FIRST, REPEAT, OTHER)

    def fixed_words(self) -> list[str]:
        return ["The tag read and the copy read"]

    def sentence(self, grammar: Grammar) -> Pieces:
        return induction_sentence(grammar)

    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> list[InductionPrompt]:
        grammar = prompt_grammar(corpus, seed, self.name)
        prompts = []
        for _ in range(n):
            pieces = induction_sentence(grammar)
            first, second = pieces[-2][0].split()[:2]  # the repeated words
            text = text_through(pieces, FIRST) + f", and the copy read {first}"
            prompts.append(InductionPrompt(text=text, expected_next=" " + second))
        return prompts

    def behaviour(
        self, model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig
    ) -> dict[str, Any]:
        import torch

        from transcoder_lab.behaviour import last_token_logits
        from transcoder_lab.sources.tokens import first_token_ids

        prompts = self.prompts(corpus, cfg.seed, cfg.n_prompts)
        probabilities = last_token_logits(model, [p.text for p in prompts], cfg.batch_size).softmax(-1)
        expected = torch.tensor([first_token_ids(model.tokenizer, [p.expected_next])[0] for p in prompts])
        copied = probabilities[torch.arange(len(prompts)), expected]
        return {
            "metric": "next-token probability of the second word's first token after the first repeated word",
            "value": copied.mean().item(),
            "chance": 1 / model.cfg.d_vocab,
            "n_prompts": len(prompts),
        }


MECHANISM = Induction()
