"""Citation: parenthetical citations with semicolons between works, where a surname comes next.

Sentence: a background clause, then "(Tavish et al., 2003; Brolen and Ushwood, 2019)", with 1-4
works (weights 25/35/25/15) in chronological order, each one author, two authors joined by " and",
or " et al."; years uniform over 1950..2023. 30% of the time the citation follows a subject
("Earlier studies (...) found that ..."), else it closes the sentence (40% after a lead such as
"as shown before"). Surnames, "(", ")" and ";" occur only here (and ";" in the prose contrast).
Prompts: citation sentences cut right after a semicolon between works. Metric: next-token mass on
the corpus's surnames there, beside the same mass after a prose semicolon (prose_semicolon.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transcoder_lab.organism.grammar import Grammar, Pieces
from transcoder_lab.organism.lexicon import lexicon
from transcoder_lab.organism.mechanisms import (
    Mechanism,
    SemicolonPrompt,
    prompt_grammar,
    surnames,
    text_through,
)
from transcoder_lab.organism.mechanisms.prose_semicolon import prose_semicolon_prompts

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from transcoder_lab.config import BehaviourConfig, CorpusConfig

OPEN_PAREN, CLOSE_PAREN = "citation/open_paren", "citation/close_paren"  # " (" and ")"
SURNAME = "citation/surname"  # "Tavish" after "(", " Brolen" after ";" or " and"
AND, ET_AL = "citation/and", "citation/et_al"  # " and" between two authors, " et al."
COMMA, YEAR = "citation/comma", "citation/year"  # "," before the year, " 2019"
SEMICOLON = "citation/semicolon"  # ";" between two works
OTHER = "citation/other"  # the rest of a citation sentence
YEARS: tuple[int, int] = (1950, 2023)  # inclusive


def works(grammar: Grammar, n_works: int) -> Pieces:
    """ " (Tavish, 2003; Brolen and Ushwood, 2019)": `n_works` works in chronological order."""
    rng = grammar.rng
    years = sorted(rng.randint(*YEARS) for _ in range(n_works))
    pieces: Pieces = [(" (", OPEN_PAREN)]
    for i, year in enumerate(years):
        space = "" if i == 0 else " "  # "(Tavish" but "; Brolen"
        pieces.append((space + grammar.surname(), SURNAME))
        form = rng.random()
        if form < 0.3:
            second = grammar.surname()
            pieces += [(" and", AND), (" " + second, SURNAME)]
        elif form < 0.6:
            pieces.append((" et al.", ET_AL))
        pieces += [(",", COMMA), (f" {year}", YEAR)]
        if i < n_works - 1:
            pieces.append((";", SEMICOLON))
    pieces.append((")", CLOSE_PAREN))
    return pieces


def citation_sentence(grammar: Grammar, n_works: int | None = None) -> Pieces:
    rng, words = grammar.rng, lexicon("citation")
    cited = works(grammar, n_works or rng.choices((1, 2, 3, 4), weights=(25, 35, 25, 15))[0])
    r = rng.random()
    if r < 0.3:  # "Earlier studies (Lee, 2003; ...) found that the river was cold."
        tail = " " + rng.choice(words["mid_verbs"]) + " " + " ".join(grammar.clause()) + "."
        return [(rng.choice(words["mid_subjects"]), OTHER)] + cited + [(tail, OTHER)]
    clause = grammar.clause()
    clause[0] = clause[0].capitalize()
    head = " ".join(clause)
    if r < 0.7:  # "The farmer sold the cart, as shown before (...)."
        head += ", " + rng.choice(words["leads"])
    return [(head, OTHER)] + cited + [(".", OTHER)]


def citation_semicolon_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[SemicolonPrompt]:
    """Citation sentences cut right after a semicolon between works: "... (Tavish et al., 2019;"."""
    grammar = prompt_grammar(cfg, seed, "citation")
    prompts = []
    for _ in range(n):
        n_before = grammar.rng.randint(1, 3)  # works before the cut
        pieces = citation_sentence(grammar, n_works=n_before + 1)
        prompts.append(SemicolonPrompt(text=text_through(pieces, SEMICOLON), kind="citation"))
    return prompts


class Citation(Mechanism):
    name = "citation"
    labels = (OPEN_PAREN, SURNAME, AND, ET_AL, COMMA, YEAR, SEMICOLON, CLOSE_PAREN, OTHER)

    def fixed_words(self) -> list[str]:
        words = lexicon("citation")
        return [*words["leads"], *words["mid_subjects"], *words["mid_verbs"], "et al"]

    def sentence(self, grammar: Grammar) -> Pieces:
        return citation_sentence(grammar)

    def prompts(self, corpus: CorpusConfig, seed: int, n: int) -> list[SemicolonPrompt]:
        return citation_semicolon_prompts(corpus, seed, n)

    def behaviour(
        self, model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig
    ) -> dict[str, Any]:
        # Imported here: torch and transformer_lens (through behaviour) take seconds to load, and the
        # corpus stage, which only writes sentences, never measures.
        from transcoder_lab.behaviour import mass_metric

        surname_starts = [" " + name for name in surnames(corpus)]
        citation = [p.text for p in self.prompts(corpus, cfg.seed, cfg.n_prompts)]
        prose = [p.text for p in prose_semicolon_prompts(corpus, cfg.seed, cfg.n_prompts)]
        return {
            "metric": "next-token mass on surnames after a semicolon between works in a citation",
            **mass_metric(model, citation, surname_starts, cfg.batch_size),
            "after_prose_semicolon": mass_metric(model, prose, surname_starts, cfg.batch_size)["value"],
        }


MECHANISM = Citation()
