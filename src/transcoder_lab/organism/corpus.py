"""A procedurally generated English-like corpus with planted mechanisms and per-character labels.

The organism (DESIGN.md section 2) is trained on this text. Every character of every document
carries a ground-truth label saying which mechanism produced it and in which role, so that later
stages can check whether a transcoder feature really tracks one mechanism.

Algorithm
1. Vocabulary (`build_vocabulary`, deterministic in `cfg.seed` and the word counts only):
   a. start from hand-written lists of real English function words, nouns (with plurals), verbs
      (with past tenses), adjectives, adverbs and surnames;
   b. top each content class up to `cfg.n_nouns` / `n_verbs` / `n_adjectives` / `n_surnames` with
      pseudo-English words built from onset + vowel + coda syllables plus a class-typical suffix
      ("-ous" for adjectives, "-son" for surnames, ...). A candidate is kept only if it and its
      derived forms (plural, past tense) differ from every word already in the vocabulary,
      compared case-insensitively; pseudo verbs take a regular "-ed" past, surnames are
      capitalised;
   c. real words come first in each class and words are drawn with Zipf-like weights
      (weight 1 / (rank + 10)), so common words are real English and the pseudo-words form a
      long tail, as in natural text.
2. Sentences (`_SentenceGenerator`): each sentence is a list of (piece, label id) pairs. A piece
   starts with the space that precedes it (GPT-2 style, " caught"), so a label boundary always
   falls where the tokenizer's pre-tokenizer also cuts (before a space, between letters and
   punctuation, between two-digit groups of a year). The sentence kind is drawn with the shares
   in `CorpusConfig`; the rest is background from a small probabilistic grammar:
   S -> [PP ","] NP VP ["," (and|but|so) NP VP] ".", NP -> Det Adj{0-2} Noun [PP] [RelClause] |
   Pronoun, VP -> Verb-past NP [PP] | Verb-past PP | was/were Adj | Verb-past to Verb NP | ...
   Planted mechanisms: greater-than year spans, parenthetical citations with semicolons between
   works, prose semicolons joining two clauses, passive "was caught" vs active "caught", and
   "an estimated (cost of) <quantity>" phrases (see the `_*_sentence` methods for the templates).
   Digits, "(", ")", ";", "$", " caught", " estimated" and surnames occur only in their planted
   mechanism, so the ground truth of each token is unambiguous.
3. Documents (`generate_documents`): 4-12 sentences (`cfg.sentences_per_document`) joined by single
   spaces; the joining space belongs to the first piece of the next sentence. Adjacent pieces
   with the same label are merged into one span, giving `Document.spans`: (start, end, label)
   triples that cover the text exactly.
4. Behaviour prompts (`greater_than_prompts`, `citation_semicolon_prompts`, ...): the same sentence
   families as training, drawn with the caller's seed but with the vocabulary of `cfg.seed`, and
   cut right before the token whose prediction the metric measures.

Everything random goes through `random.Random` instances seeded from explicit integers or
strings (string seeds are hashed with SHA-512 by `random`, so they do not depend on
PYTHONHASHSEED); no global random state is touched.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from transcoder_lab.config import CorpusConfig

# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------

LABELS: tuple[str, ...] = (
    "background",  # 0: sentences from the background grammar
    "greater_than/start_century",  # " 17" of the first year
    "greater_than/start_yy",  # "32" of the first year
    "greater_than/end_century",  # " 17" of the second year (the same century)
    "greater_than/end_yy",  # "89" of the second year, always > start_yy
    "greater_than/other",  # the rest of a greater-than sentence
    "citation/open_paren",  # " ("
    "citation/surname",  # "Tavish" after "(", " Brolen" after ";" or " and"
    "citation/and",  # " and" between the two authors of a work
    "citation/et_al",  # " et al."
    "citation/comma",  # "," before the year
    "citation/year",  # " 2019"
    "citation/semicolon",  # ";" between two works
    "citation/close_paren",  # ")"
    "citation/other",  # the rest of a citation sentence
    "prose/semicolon",  # ";" joining two clauses of ordinary prose (the contrast class)
    "prose/other",  # the rest of a prose-semicolon sentence
    "caught/passive_was",  # " was" in "was caught"
    "caught/passive_caught",  # " caught" after " was"
    "caught/passive_by",  # " by" right after "was caught"
    "caught/active_caught",  # " caught" right after the subject
    "caught/other",  # the rest of a caught sentence
    "estimate/estimated",  # " estimated"
    "estimate/cost_of",  # " cost of"
    "estimate/quantity",  # " $4 million", " 300 dollars", " 40,000"
    "estimate/other",  # the rest of an estimate sentence (including "an" and "people")
)
LABEL_ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

_BG = LABEL_ID["background"]
_GT_START_C = LABEL_ID["greater_than/start_century"]
_GT_START_YY = LABEL_ID["greater_than/start_yy"]
_GT_END_C = LABEL_ID["greater_than/end_century"]
_GT_END_YY = LABEL_ID["greater_than/end_yy"]
_GT_OTHER = LABEL_ID["greater_than/other"]
_CIT_OPEN = LABEL_ID["citation/open_paren"]
_CIT_SURNAME = LABEL_ID["citation/surname"]
_CIT_AND = LABEL_ID["citation/and"]
_CIT_ET_AL = LABEL_ID["citation/et_al"]
_CIT_COMMA = LABEL_ID["citation/comma"]
_CIT_YEAR = LABEL_ID["citation/year"]
_CIT_SEMI = LABEL_ID["citation/semicolon"]
_CIT_CLOSE = LABEL_ID["citation/close_paren"]
_CIT_OTHER = LABEL_ID["citation/other"]
_PROSE_SEMI = LABEL_ID["prose/semicolon"]
_PROSE_OTHER = LABEL_ID["prose/other"]
_CAUGHT_WAS = LABEL_ID["caught/passive_was"]
_CAUGHT_PASSIVE = LABEL_ID["caught/passive_caught"]
_CAUGHT_BY = LABEL_ID["caught/passive_by"]
_CAUGHT_ACTIVE = LABEL_ID["caught/active_caught"]
_CAUGHT_OTHER = LABEL_ID["caught/other"]
_EST_ESTIMATED = LABEL_ID["estimate/estimated"]
_EST_COST_OF = LABEL_ID["estimate/cost_of"]
_EST_QUANTITY = LABEL_ID["estimate/quantity"]
_EST_OTHER = LABEL_ID["estimate/other"]

GREATER_THAN_CENTURIES: tuple[int, ...] = tuple(range(11, 20))  # years 1100-1999
CITATION_YEARS: tuple[int, int] = (1950, 2023)  # inclusive
# The first pre-token of every quantity after "an estimated cost of": " $" or the first one or
# two digits of a number with its leading space (" 4 million dollars", " 40,000 dollars").
ESTIMATE_QUANTITY_STARTS: tuple[str, ...] = (" $",) + tuple(f" {n}" for n in range(1, 100))

# ---------------------------------------------------------------------------------------------
# Real words. Kept apart by class; a word used by a planted mechanism ("caught", "estimated",
# "year", "cost", "lasted") never appears in these background lists.
# ---------------------------------------------------------------------------------------------

_REAL_NOUNS = (
    "river",
    "field",
    "house",
    "garden",
    "village",
    "city",
    "road",
    "forest",
    "mountain",
    "valley",
    "lake",
    "island",
    "harbor",
    "market",
    "church",
    "castle",
    "tower",
    "school",
    "library",
    "kitchen",
    "window",
    "door",
    "table",
    "chair",
    "lamp",
    "candle",
    "book",
    "letter",
    "map",
    "coin",
    "ring",
    "box",
    "basket",
    "bottle",
    "cup",
    "bowl",
    "knife",
    "rope",
    "boat",
    "ship",
    "cart",
    "wagon",
    "horse",
    "dog",
    "cat",
    "bird",
    "cow",
    "goat",
    "sheep",
    "pig",
    "wolf",
    "bear",
    "deer",
    "rabbit",
    "farmer",
    "teacher",
    "doctor",
    "soldier",
    "sailor",
    "baker",
    "merchant",
    "king",
    "queen",
    "prince",
    "princess",
    "child",
    "woman",
    "man",
    "boy",
    "girl",
    "friend",
    "neighbor",
    "stranger",
    "traveler",
    "student",
    "priest",
    "judge",
    "captain",
    "hunter",
    "miner",
    "weaver",
    "singer",
    "painter",
    "writer",
    "clerk",
    "nurse",
    "guard",
    "mayor",
    "widow",
    "uncle",
    "aunt",
    "brother",
    "sister",
    "mother",
    "father",
    "family",
    "crowd",
    "army",
    "council",
    "storm",
    "wind",
    "rain",
    "snow",
    "fire",
    "stone",
    "tree",
    "flower",
    "leaf",
    "branch",
    "seed",
    "apple",
    "bread",
    "cheese",
    "wine",
    "milk",
    "soup",
    "meal",
    "song",
    "story",
    "plan",
    "idea",
    "question",
    "answer",
    "promise",
    "dream",
    "night",
    "morning",
    "evening",
    "winter",
    "summer",
    "autumn",
    "season",
    "week",
    "month",
    "hour",
    "moment",
    "path",
    "gate",
    "wall",
    "roof",
    "floor",
    "hill",
    "cave",
    "shore",
    "sea",
    "wave",
    "sky",
    "star",
    "moon",
    "sun",
    "cloud",
    "shadow",
    "voice",
    "name",
    "word",
    "page",
    "picture",
    "painting",
    "statue",
    "engine",
    "wheel",
    "clock",
    "bell",
    "drum",
    "flag",
    "coat",
    "hat",
    "boot",
    "shirt",
    "blanket",
    "pillow",
    "mirror",
    "key",
    "lock",
    "chest",
    "barrel",
    "ladder",
    "hammer",
    "nail",
    "needle",
    "thread",
    "cloth",
    "paper",
    "pen",
    "ink",
    "desk",
    "office",
    "factory",
    "mill",
    "farm",
    "barn",
    "pond",
    "meadow",
    "orchard",
    "camp",
    "tent",
    "fence",
    "stable",
    "station",
    "carriage",
    "museum",
    "theater",
    "hospital",
    "prison",
    "palace",
    "temple",
    "street",
    "corner",
    "circle",
    "bench",
    "shelf",
    "drawer",
    "jar",
    "kettle",
    "oven",
    "stove",
    "cellar",
    "attic",
    "porch",
    "yard",
    "hedge",
    "stream",
    "creek",
    "canyon",
    "desert",
    "jungle",
    "swamp",
    "glacier",
    "volcano",
    "beach",
    "cliff",
    "bay",
)

_IRREGULAR_PLURALS = {
    "sheep": "sheep",
    "deer": "deer",
    "wolf": "wolves",
    "leaf": "leaves",
    "child": "children",
    "woman": "women",
    "man": "men",
    "knife": "knives",
    "shelf": "shelves",
    "thief": "thieves",
    "person": "people",
    "mouse": "mice",
    "fish": "fish",
    "police": "police",
    "goose": "geese",
}

# (base, past) pairs; "catch"/"caught" is reserved for the caught mechanism. No lemma is both a
# noun and a verb here, so every lemma of the vocabulary has one word class.
_REAL_VERBS = (
    "walk:walked",
    "find:found",
    "take:took",
    "bring:brought",
    "build:built",
    "watch:watched",
    "follow:followed",
    "visit:visited",
    "paint:painted",
    "fix:fixed",
    "push:pushed",
    "pull:pulled",
    "lift:lifted",
    "drop:dropped",
    "hide:hid",
    "carry:carried",
    "open:opened",
    "wash:washed",
    "fill:filled",
    "move:moved",
    "touch:touched",
    "climb:climbed",
    "cross:crossed",
    "reach:reached",
    "leave:left",
    "meet:met",
    "see:saw",
    "hear:heard",
    "hold:held",
    "keep:kept",
    "sell:sold",
    "buy:bought",
    "send:sent",
    "give:gave",
    "make:made",
    "write:wrote",
    "read:read",
    "draw:drew",
    "throw:threw",
    "break:broke",
    "choose:chose",
    "forget:forgot",
    "remember:remembered",
    "notice:noticed",
    "greet:greeted",
    "help:helped",
    "call:called",
    "ask:asked",
    "thank:thanked",
    "invite:invited",
    "warn:warned",
    "guide:guided",
    "save:saved",
    "count:counted",
    "measure:measured",
    "weigh:weighed",
    "sort:sorted",
    "mend:mended",
    "sew:sewed",
    "cook:cooked",
    "bake:baked",
    "boil:boiled",
    "taste:tasted",
    "smell:smelled",
    "plant:planted",
    "grow:grew",
    "gather:gathered",
    "pick:picked",
    "load:loaded",
    "ride:rode",
    "drive:drove",
    "steer:steered",
    "sail:sailed",
    "row:rowed",
    "repair:repaired",
    "burn:burned",
    "light:lit",
    "shake:shook",
    "wrap:wrapped",
    "tie:tied",
    "bury:buried",
    "dig:dug",
    "search:searched",
    "explore:explored",
    "describe:described",
    "admire:admired",
    "praise:praised",
    "blame:blamed",
    "forgive:forgave",
    "examine:examined",
    "study:studied",
    "teach:taught",
    "learn:learned",
    "borrow:borrowed",
    "lend:lent",
    "share:shared",
    "hang:hung",
    "place:placed",
    "set:set",
    "raise:raised",
    "lower:lowered",
)

_TO_VERBS = (
    "tried",
    "wanted",
    "hoped",
    "planned",
    "decided",
    "refused",
    "promised",
    "needed",
    "agreed",
    "offered",
)

_REAL_ADJECTIVES = (
    "old",
    "young",
    "small",
    "large",
    "tall",
    "short",
    "quiet",
    "loud",
    "dark",
    "bright",
    "warm",
    "cold",
    "wet",
    "dry",
    "heavy",
    "soft",
    "hard",
    "green",
    "red",
    "blue",
    "yellow",
    "white",
    "black",
    "brown",
    "gray",
    "golden",
    "silver",
    "wooden",
    "narrow",
    "wide",
    "deep",
    "shallow",
    "empty",
    "full",
    "dirty",
    "strange",
    "simple",
    "quick",
    "slow",
    "careful",
    "gentle",
    "proud",
    "brave",
    "clever",
    "kind",
    "cruel",
    "happy",
    "sad",
    "tired",
    "hungry",
    "busy",
    "lazy",
    "rich",
    "poor",
    "famous",
    "ancient",
    "modern",
    "early",
    "late",
    "hidden",
    "broken",
    "sharp",
    "smooth",
    "rough",
    "bitter",
    "sweet",
    "fresh",
    "rotten",
    "distant",
    "nearby",
    "northern",
    "southern",
    "eastern",
    "western",
    "thin",
    "thick",
    "round",
    "flat",
    "steep",
    "lonely",
    "crowded",
    "silent",
    "noisy",
    "calm",
    "wild",
    "fierce",
    "shy",
    "curious",
    "honest",
    "polite",
    "rude",
    "humble",
    "noble",
    "common",
    "rare",
    "plain",
    "fancy",
    "pale",
    "pure",
    "grand",
    "tiny",
    "huge",
    "pleasant",
    "gloomy",
    "sunny",
    "rainy",
    "windy",
    "frozen",
    "sacred",
    "sturdy",
    "fragile",
)

_ADVERBS = (
    "quickly",
    "slowly",
    "again",
    "later",
    "soon",
    "often",
    "quietly",
    "carefully",
    "yesterday",
    "today",
    "together",
    "alone",
    "twice",
    "gladly",
    "suddenly",
    "calmly",
    "gently",
    "loudly",
    "early",
    "outside",
    "inside",
    "everywhere",
)

_REAL_SURNAMES = (
    "Smith",
    "Lee",
    "Park",
    "Marsh",
    "Chen",
    "Garcia",
    "Novak",
    "Kumar",
    "Okafor",
    "Silva",
    "Walsh",
    "Fischer",
    "Moreau",
    "Rossi",
    "Tanaka",
    "Kim",
    "Nguyen",
    "Taylor",
    "Wilson",
    "Evans",
    "Hughes",
    "Patel",
    "Cohen",
    "Becker",
    "Larsen",
    "Dubois",
    "Romero",
    "Costa",
    "Ivanova",
    "Kowalski",
    "Hansen",
    "Jansen",
    "Murphy",
    "Kelly",
    "Foster",
    "Grant",
    "Hayes",
    "Reid",
    "Shaw",
    "Hale",
    "Abbott",
    "Barker",
    "Carver",
    "Dalton",
    "Ellis",
    "Fleming",
    "Garner",
    "Hollis",
    "Irwin",
    "Jarvis",
    "Keller",
    "Lowe",
    "Mercer",
    "Norris",
    "Osborne",
    "Pryor",
    "Quinn",
    "Rowe",
    "Sutton",
    "Thorne",
    "Upton",
    "Vance",
    "Whitman",
    "Yates",
    "Zeller",
)

_SUBJECT_PRONOUNS = ("he", "she", "they", "we", "it")  # "it" is singular; "they"/"we" plural
_OBJECT_PRONOUNS = ("him", "her", "them", "us", "it")
_PLURAL_PRONOUNS = frozenset({"they", "we"})
_DETS_SINGULAR = (
    "the",
    "the",
    "the",
    "a",
    "a",
    "this",
    "that",
    "every",
    "each",
    "one",
    "another",
    "his",
    "her",
    "their",
    "our",
    "my",
)
_DETS_PLURAL = (
    "the",
    "the",
    "some",
    "many",
    "several",
    "these",
    "those",
    "two",
    "three",
    "his",
    "her",
    "their",
    "our",
    "my",
    "no",
)
_PREPOSITIONS = (
    "in",
    "on",
    "at",
    "near",
    "under",
    "behind",
    "with",
    "from",
    "across",
    "over",
    "beside",
    "without",
    "after",
    "before",
    "into",
    "through",
    "along",
    "around",
    "toward",
    "against",
    "by",
    "for",
    "inside",
    "beyond",
)
_CONJUNCTIONS = ("and", "but", "so", "while")
_PROSE_LINKERS = ("however", "still", "then", "meanwhile", "instead")

# Planted-mechanism fillers.
_GT_NOUNS = (
    "war",
    "siege",
    "reign",
    "drought",
    "famine",
    "plague",
    "expedition",
    "dynasty",
    "treaty",
    "voyage",
    "festival",
    "rebellion",
    "revolution",
    "empire",
    "kingdom",
    "occupation",
    "crusade",
    "journey",
    "trial",
    "strike",
    "boom",
    "recession",
    "exile",
    "migration",
    "construction",
    "survey",
    "mission",
    "campaign",
    "truce",
    "alliance",
    "era",
    "feud",
    "epidemic",
    "excavation",
    "partnership",
    "friendship",
    "marriage",
    "apprenticeship",
    "tradition",
    "blockade",
    "occupation",
    "winter",
)
_GT_FRAMES = (  # (verb phrase, form): "year" writes "from the year A to the year B"
    ("lasted", "year"),
    ("lasted", "year"),
    ("lasted", "bare"),
    ("lasted", "between"),
    ("ran", "year"),
    ("ran", "bare"),
    ("continued", "year"),
    ("stretched", "bare"),
)
_CITATION_LEADS = (
    "as shown before",
    "as reported earlier",
    "as noted in earlier work",
    "as described by others",
    "as argued in several studies",
    "as found in the survey",
    "as several authors observed",
    "as the records show",
)
_CITATION_MID_SUBJECTS = (
    "Earlier studies",
    "Several authors",
    "Previous surveys",
    "Other writers",
    "Some historians",
    "Recent reports",
    "Field notes",
)
_CITATION_MID_VERBS = ("found that", "argued that", "showed that", "noted that", "claimed that")

_CAUGHT_SUSPECTS = (
    "thief",
    "robber",
    "burglar",
    "spy",
    "smuggler",
    "poacher",
    "suspect",
    "prisoner",
    "fox",
    "rat",
    "mouse",
    "rabbit",
    "boy",
    "girl",
    "man",
    "woman",
    "bandit",
    "pickpocket",
    "deserter",
    "runaway",
    "intruder",
    "forger",
    "cheat",
    "liar",
    "raccoon",
    "weasel",
)
_CAUGHT_AGENTS = (
    "guard",
    "police",
    "farmer",
    "soldier",
    "neighbor",
    "hunter",
    "patrol",
    "sheriff",
    "watchman",
    "dog",
    "crowd",
    "owner",
    "teacher",
    "officer",
    "camera",
    "trap",
    "net",
    "ranger",
    "fisherman",
    "shopkeeper",
)
_CAUGHT_NONBY = (
    ("in", "rain"),
    ("in", "act"),
    ("on", "camera"),
    ("at", "border"),
    ("near", "gate"),
    ("in", "storm"),
    ("inside", "barn"),
    ("behind", "shed"),
    ("at", "station"),
    ("in", "crossfire"),
    ("under", "bridge"),
)
_CAUGHT_CATCHERS = (
    "girl",
    "boy",
    "dog",
    "cat",
    "fisherman",
    "goalkeeper",
    "player",
    "hunter",
    "child",
    "farmer",
    "cook",
    "sailor",
    "keeper",
    "boatman",
    "owl",
    "hawk",
    "fox",
    "trapper",
)
_CAUGHT_OBJECTS = (
    "ball",
    "fish",
    "fly",
    "mouse",
    "train",
    "bus",
    "cold",
    "frog",
    "butterfly",
    "trout",
    "salmon",
    "rat",
    "rabbit",
    "thief",
    "glimpse",
    "wave",
    "moth",
    "cricket",
    "lizard",
    "bug",
    "rope",
    "stick",
)
_CAUGHT_TAILS = (
    "after a long chase",
    "near the river",
    "at dawn",
    "before noon",
    "last night",
    "with both hands",
    "in the garden",
    "on the first try",
    "without a sound",
)

_EST_BUILDINGS = (
    "bridge",
    "tunnel",
    "stadium",
    "dam",
    "railway",
    "highway",
    "canal",
    "tower",
    "museum",
    "hospital",
    "school",
    "library",
    "harbor",
    "airport",
    "pipeline",
    "cathedral",
    "palace",
    "factory",
    "terminal",
    "reservoir",
)
_EST_WORKS = ("built", "repaired", "restored", "completed", "replaced", "expanded", "renovated", "rebuilt")
_EST_COUNTED = (
    "people",
    "visitors",
    "workers",
    "fans",
    "birds",
    "soldiers",
    "pilgrims",
    "tourists",
    "residents",
    "students",
    "spectators",
)
_EST_EVENTS = (
    "festival",
    "concert",
    "match",
    "parade",
    "fair",
    "ceremony",
    "rally",
    "auction",
    "race",
)
_EST_ATTEND = ("attended the", "came to the", "watched the", "joined the")

# Syllable parts of pseudo-words: onset + nucleus + coda, with a class-typical suffix.
_ONSETS = (
    "b",
    "bl",
    "br",
    "ch",
    "cl",
    "cr",
    "d",
    "dr",
    "f",
    "fl",
    "fr",
    "g",
    "gl",
    "gr",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "pl",
    "pr",
    "r",
    "s",
    "sc",
    "sh",
    "sk",
    "sl",
    "sn",
    "sp",
    "st",
    "str",
    "sw",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
)
_NUCLEI = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "oa")
_MEDIAL_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th")
# Simple codas are listed twice so that most syllables end plainly ("-ol", "-en").
_CODAS_FINAL = (
    "",
    "",
    "b",
    "ck",
    "d",
    "d",
    "ff",
    "g",
    "k",
    "l",
    "l",
    "ld",
    "lk",
    "ll",
    "lt",
    "m",
    "m",
    "mp",
    "n",
    "n",
    "nd",
    "ng",
    "nk",
    "nt",
    "p",
    "r",
    "r",
    "rd",
    "rk",
    "rn",
    "rt",
    "sh",
    "sk",
    "ss",
    "st",
    "t",
    "t",
    "th",
    "x",
)
_CODAS_MEDIAL = ("", "", "", "", "", "l", "m", "n", "r", "s")
_SUFFIXES = {
    "noun": ("et", "on", "er", "ment", "ness", "ling", "ard", "ot", "age", "ery"),
    "verb": ("en", "ify", "ate", "le", "ish"),
    "adjective": ("ish", "ous", "ful", "y", "ic", "al", "ent", "less", "ive", "ary"),
    "surname": ("son", "ley", "ton", "man", "ford", "wick", "well", "by", "er", "en", "ish", "ridge"),
}
_SUFFIX_PROBABILITY = {"noun": 0.3, "verb": 0.3, "adjective": 0.6, "surname": 0.5}


# ---------------------------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------------------------


@dataclass
class Document:
    """One training document: its text and labelled spans (char start, char end, label id)."""

    text: str
    spans: list[tuple[int, int, int]]


@dataclass(frozen=True)
class GreaterThanPrompt:
    text: str  # "The war lasted from the year 1732 to the year 17"
    noun: str
    century: int  # 17
    yy: int  # 32; a correct continuation is a two-digit year > yy


@dataclass(frozen=True)
class SemicolonPrompt:
    text: str  # ends with ";"
    kind: str  # "citation" (a surname should follow) or "prose" (a lowercase clause follows)


@dataclass(frozen=True)
class CaughtPrompt:
    text: str  # ends with " caught"
    passive: bool
    expected_next: tuple[str, ...]  # (" by",) for passive, (" the", " a") for active


@dataclass(frozen=True)
class EstimatePrompt:
    text: str  # ends with "an estimated cost of"
    expected_next: tuple[str, ...]  # ESTIMATE_QUANTITY_STARTS


def derive_seed(seed: int, name: str) -> int:
    """A 63-bit seed for a named sub-stream, stable across Python versions and processes."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------


def plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
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


def _indefinite(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class _ZipfSampler:
    """Draws from a word list with weight 1 / (rank + offset): early (real) words are common."""

    def __init__(self, n: int, offset: float = 10.0) -> None:
        self.cumulative = list(itertools.accumulate(1.0 / (rank + offset) for rank in range(n)))
        self.total = self.cumulative[-1]

    def index(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.cumulative, rng.random() * self.total)


@dataclass(frozen=True)
class Vocabulary:
    """The words of the corpus for one `cfg.seed`: real words first, then pseudo-words."""

    nouns: tuple[str, ...]
    noun_plurals: tuple[str, ...]  # aligned with nouns
    verbs: tuple[str, ...]  # base forms
    verbs_past: tuple[str, ...]  # aligned with verbs
    adjectives: tuple[str, ...]
    surnames: tuple[str, ...]  # capitalised
    n_pseudo: int  # how many of the above lemmas are generated pseudo-words

    def distinct_words(self) -> set[str]:
        """Every word form the generator can write (case-folded except surnames)."""
        words = set(self.nouns) | set(self.noun_plurals) | set(self.verbs) | set(self.verbs_past)
        words |= set(self.adjectives) | set(self.surnames) | set(_ADVERBS) | set(_TO_VERBS)
        fixed = [
            _SUBJECT_PRONOUNS,
            _OBJECT_PRONOUNS,
            _DETS_SINGULAR,
            _DETS_PLURAL,
            _PREPOSITIONS,
            _CONJUNCTIONS,
            _PROSE_LINKERS,
            _GT_NOUNS,
            _CITATION_LEADS,
            _CITATION_MID_SUBJECTS,
            _CITATION_MID_VERBS,
            _CAUGHT_SUSPECTS,
            _CAUGHT_AGENTS,
            _CAUGHT_CATCHERS,
            _CAUGHT_OBJECTS,
            _CAUGHT_TAILS,
            _EST_BUILDINGS,
            _EST_WORKS,
            _EST_COUNTED,
            _EST_EVENTS,
            _EST_ATTEND,
            [w for pair in _CAUGHT_NONBY for w in pair],
            [f for f, _ in _GT_FRAMES],
            _TEMPLATE_WORDS,
        ]
        for group in fixed:
            for phrase in group:
                words.update(w.lower() for w in re.findall(r"[A-Za-z]+", phrase))
        words |= {plural(n) for n in _CAUGHT_AGENTS + _CAUGHT_SUSPECTS}
        return words


# Words written by templates outside the filler lists above.
_TEMPLATE_WORDS = (
    "The from to the year years between and et al was caught by an estimated cost of million billion",
    "thousand dollars at had carried will have An drew a were that which new plan for",
)


def _pseudo_word(rng: random.Random, kind: str) -> str:
    # Suffixed words get fewer syllables so that pseudo-words stay short and pronounceable.
    suffix = rng.choice(_SUFFIXES[kind]) if rng.random() < _SUFFIX_PROBABILITY[kind] else ""
    n_syllables = rng.choice((1, 1, 2) if suffix else (1, 2, 2, 3))
    parts = []
    for i in range(n_syllables):
        if i == 0:
            onset = "" if rng.random() < 0.12 else rng.choice(_ONSETS)
        else:  # a medial syllable always has a simple onset, so two nuclei never touch
            onset = rng.choice(_MEDIAL_ONSETS)
        coda = rng.choice(_CODAS_FINAL if i == n_syllables - 1 else _CODAS_MEDIAL)
        parts.append(onset + rng.choice(_NUCLEI) + coda)
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


def build_vocabulary(cfg: CorpusConfig) -> Vocabulary:
    """The vocabulary for `cfg`: depends on cfg.seed and the word counts, nothing else."""
    return _build_vocabulary(cfg.seed, cfg.n_nouns, cfg.n_verbs, cfg.n_adjectives, cfg.n_surnames)


@functools.lru_cache(maxsize=8)
def _build_vocabulary(
    seed: int, n_nouns: int, n_verbs: int, n_adjectives: int, n_surnames: int
) -> Vocabulary:
    if min(n_nouns, n_verbs, n_adjectives, n_surnames) < 2:
        raise ValueError("corpus.n_nouns, n_verbs, n_adjectives and n_surnames must each be >= 2")
    rng = random.Random(derive_seed(seed, "vocabulary"))
    real_verbs = [pair.split(":") for pair in _REAL_VERBS]
    # Every word that any template or list can write is off limits for pseudo-words.
    used: set[str] = set()
    for words in (
        _REAL_NOUNS,
        _REAL_ADJECTIVES,
        _ADVERBS,
        _TO_VERBS,
        [s.lower() for s in _REAL_SURNAMES],
        [v for pair in real_verbs for v in pair],
        ["catch", "caught", "estimate", "estimated"],
    ):
        used.update(words)
    used.update(plural(n) for n in _REAL_NOUNS)
    used |= {w.lower() for w in Vocabulary((), (), (), (), (), (), 0).distinct_words()}

    nouns = _top_up(_REAL_NOUNS, n_nouns, "noun", rng, used)
    verb_bases = _top_up([b for b, _ in real_verbs], n_verbs, "verb", rng, used)
    real_past = dict(real_verbs)
    adjectives = _top_up(_REAL_ADJECTIVES, n_adjectives, "adjective", rng, used)
    surnames_lower = _top_up([s.lower() for s in _REAL_SURNAMES], n_surnames, "surname", rng, used)
    surnames = [s.capitalize() for s in surnames_lower]
    n_real = (
        min(n_nouns, len(_REAL_NOUNS))
        + min(n_verbs, len(real_verbs))
        + min(n_adjectives, len(_REAL_ADJECTIVES))
        + min(n_surnames, len(_REAL_SURNAMES))
    )
    return Vocabulary(
        nouns=tuple(nouns),
        noun_plurals=tuple(plural(n) for n in nouns),
        verbs=tuple(verb_bases),
        verbs_past=tuple(real_past.get(v, regular_past(v)) for v in verb_bases),
        adjectives=tuple(adjectives),
        surnames=tuple(surnames),
        n_pseudo=n_nouns + n_verbs + n_adjectives + n_surnames - n_real,
    )


def surnames(cfg: CorpusConfig) -> list[str]:
    """The surnames cited in the corpus of `cfg` (a surname follows a citation semicolon)."""
    return list(build_vocabulary(cfg).surnames)


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

Pieces = list[tuple[str, int]]


class _SentenceGenerator:
    """Draws sentences as lists of (piece, label) with the vocabulary and a random stream."""

    def __init__(self, vocab: Vocabulary, rng: random.Random) -> None:
        self.vocab = vocab
        self.rng = rng
        self.noun_sampler = _ZipfSampler(len(vocab.nouns))
        self.verb_sampler = _ZipfSampler(len(vocab.verbs))
        self.adjective_sampler = _ZipfSampler(len(vocab.adjectives))
        self.surname_sampler = _ZipfSampler(len(vocab.surnames), offset=30.0)

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
        rng = self.rng
        if allow_pronoun and rng.random() < 0.15:
            pronoun = rng.choice(_SUBJECT_PRONOUNS if subject else _OBJECT_PRONOUNS)
            return [pronoun], pronoun in _PLURAL_PRONOUNS or pronoun in ("them", "us")
        is_plural = rng.random() < 0.3
        det = rng.choice(_DETS_PLURAL if is_plural else _DETS_SINGULAR)
        words = [self.adjective() for _ in range(rng.choice((0, 0, 0, 1, 1, 2)))]
        words.append(self.noun(is_plural))
        if det == "a":
            det = _indefinite(words[0])
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
        return [self.rng.choice(_PREPOSITIONS)] + self.noun_phrase(subject=False, simple=True)[0]

    def verb_phrase(self, is_plural: bool) -> list[str]:
        rng = self.rng
        r = rng.random()
        if r < 0.38:
            words = [self.verb_past()] + self.noun_phrase(subject=False)[0]
            if rng.random() < 0.2:
                words += self.prepositional_phrase()
        elif r < 0.53:
            words = [self.verb_past()] + self.prepositional_phrase()
        elif r < 0.63:
            words = [self.verb_past(), rng.choice(_ADVERBS)]
        elif r < 0.75:
            words = ["were" if is_plural else "was", self.adjective()]
            if rng.random() < 0.25:
                words += ["and", self.adjective()]
        elif r < 0.83:
            words = [rng.choice(_TO_VERBS), "to", self.verb_base()] + self.noun_phrase(subject=False)[0]
        elif r < 0.91:
            words = [self.verb_past()] + self.noun_phrase(subject=False, simple=True)[0]
            words.append(rng.choice(_ADVERBS))
        else:
            words = ["had", self.verb_past()] + self.noun_phrase(subject=False, simple=True)[0]
        return words

    def clause(self) -> list[str]:
        subject, is_plural = self.noun_phrase(subject=True)
        return subject + self.verb_phrase(is_plural)

    def background_sentence(self) -> str:
        rng = self.rng
        words: list[str] = []
        if rng.random() < 0.15:
            words += self.prepositional_phrase()
            words[-1] += ","
        words += self.clause()
        if rng.random() < 0.15:
            words[-1] += ","
            words.append(rng.choice(_CONJUNCTIONS))
            words += self.clause()
        words[0] = words[0].capitalize()
        return " ".join(words) + "."

    # -- planted mechanisms ----------------------------------------------------------------------

    def greater_than_sentence(self) -> Pieces:
        rng = self.rng
        century = rng.choice(GREATER_THAN_CENTURIES)
        start_yy = rng.randrange(0, 99)  # 00..98, so that a later year in the century exists
        end_yy = rng.randrange(start_yy + 1, 100)  # uniform over (start_yy, 99]
        verb, form = rng.choice(_GT_FRAMES)
        subject = ["The"]
        if rng.random() < 0.2:
            subject.append(self.adjective())
        subject.append(self.gt_noun())
        lead, middle = {
            "year": (" from the year", " to the year"),
            "bare": (" from", " to"),
            "between": (" between the years", " and"),
        }[form]
        return [
            (" ".join(subject) + " " + verb + lead, _GT_OTHER),
            (f" {century}", _GT_START_C),
            (f"{start_yy:02d}", _GT_START_YY),
            (middle, _GT_OTHER),
            (f" {century}", _GT_END_C),
            (f"{end_yy:02d}", _GT_END_YY),
            (".", _GT_OTHER),
        ]

    def gt_noun(self) -> str:
        return self.rng.choice(_GT_NOUNS) if self.rng.random() < 0.7 else self.noun()

    def citation_works(self, n_works: int) -> Pieces:
        rng = self.rng
        years = sorted(rng.randint(*CITATION_YEARS) for _ in range(n_works))  # chronological
        pieces: Pieces = [(" (", _CIT_OPEN)]
        for i, year in enumerate(years):
            space = "" if i == 0 else " "  # "(Tavish" but "; Brolen"
            pieces.append((space + self.surname(), _CIT_SURNAME))
            form = rng.random()
            if form < 0.3:
                second = self.surname()
                pieces += [(" and", _CIT_AND), (" " + second, _CIT_SURNAME)]
            elif form < 0.6:
                pieces.append((" et al.", _CIT_ET_AL))
            pieces += [(",", _CIT_COMMA), (f" {year}", _CIT_YEAR)]
            if i < n_works - 1:
                pieces.append((";", _CIT_SEMI))
        pieces.append((")", _CIT_CLOSE))
        return pieces

    def n_citation_works(self) -> int:
        return self.rng.choices((1, 2, 3, 4), weights=(25, 35, 25, 15))[0]

    def citation_sentence(self, n_works: int | None = None) -> Pieces:
        rng = self.rng
        works = self.citation_works(n_works or self.n_citation_works())
        r = rng.random()
        if r < 0.3:  # "Earlier studies (Lee, 2003; ...) found that the river was cold."
            tail = " " + rng.choice(_CITATION_MID_VERBS) + " " + " ".join(self.clause()) + "."
            return [(rng.choice(_CITATION_MID_SUBJECTS), _CIT_OTHER)] + works + [(tail, _CIT_OTHER)]
        words = self.clause()
        words[0] = words[0].capitalize()
        head = " ".join(words)
        if r < 0.7:  # "The farmer sold the cart, as shown before (...)."
            head += ", " + rng.choice(_CITATION_LEADS)
        return [(head, _CIT_OTHER)] + works + [(".", _CIT_OTHER)]

    def prose_semicolon_sentence(self) -> Pieces:
        first = self.clause()
        first[0] = first[0].capitalize()
        second = self.clause()
        if self.rng.random() < 0.15:
            second = [self.rng.choice(_PROSE_LINKERS) + ","] + second
        return [
            (" ".join(first), _PROSE_OTHER),
            (";", _PROSE_SEMI),
            (" " + " ".join(second) + ".", _PROSE_OTHER),
        ]

    def caught_subject(self, passive: bool) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return rng.choice(("He", "She") if passive else ("He", "She", "They", "We"))
        if r < 0.85:
            noun = rng.choice(_CAUGHT_SUSPECTS if passive else _CAUGHT_CATCHERS)
        else:
            noun = self.noun()
        adjective = [self.adjective()] if rng.random() < 0.2 else []
        return " ".join(["The"] + adjective + [noun])

    def caught_sentence(self, passive: bool | None = None) -> Pieces:
        rng = self.rng
        if passive is None:
            passive = rng.random() < 0.5
        subject = self.caught_subject(passive)
        tail = "." if rng.random() < 0.7 else " " + rng.choice(_CAUGHT_TAILS) + "."
        if passive:
            if rng.random() < 0.8:
                agent_plural = rng.random() < 0.5
                agent = rng.choice(_CAUGHT_AGENTS) if rng.random() < 0.8 else self.noun()
                if agent == "police" or agent_plural:
                    agent_phrase = " the " + plural(agent)
                else:
                    agent_phrase = " " + rng.choice(("the", _indefinite(agent))) + " " + agent
                rest: Pieces = [(" by", _CAUGHT_BY), (agent_phrase + tail, _CAUGHT_OTHER)]
            else:
                preposition, noun = rng.choice(_CAUGHT_NONBY)
                rest = [(f" {preposition} the {noun}{tail}", _CAUGHT_OTHER)]
            return [(subject, _CAUGHT_OTHER), (" was", _CAUGHT_WAS), (" caught", _CAUGHT_PASSIVE)] + rest
        obj = rng.choice(_CAUGHT_OBJECTS) if rng.random() < 0.7 else self.noun()
        det = "a" if obj[0] not in "aeiou" and rng.random() < 0.5 else "the"
        return [(subject, _CAUGHT_OTHER), (" caught", _CAUGHT_ACTIVE), (f" {det} {obj}{tail}", _CAUGHT_OTHER)]

    def number(self, low: int, high: int) -> str:
        return f"{self.rng.randint(low, high):,}"

    def cost_quantity(self) -> str:
        """A quantity after "cost of"; its first pre-token is in ESTIMATE_QUANTITY_STARTS."""
        rng = self.rng
        r = rng.random()
        scale = rng.choice(("million", "million", "billion", "thousand"))
        if r < 0.4:
            return f" ${rng.randint(1, 999)} {scale}"
        if r < 0.6:
            return " $" + self.number(100, 999_999)
        if r < 0.8:
            return f" {rng.randint(1, 999)} {scale} dollars"
        return f" {self.number(100, 999_999)} dollars"

    def count_quantity(self) -> str:
        if self.rng.random() < 0.7:
            return " " + self.number(100, 999_999)
        return f" {self.rng.randint(1, 999)} {self.rng.choice(('thousand', 'million'))}"

    def cost_head(self) -> str:
        """The words before " an estimated cost of"."""
        rng = self.rng
        building = rng.choice(_EST_BUILDINGS) if rng.random() < 0.8 else self.noun()
        r = rng.random()
        if r < 0.6:
            return f"The {building} was {rng.choice(_EST_WORKS)} at"
        if r < 0.8:
            return f"The {building} had"
        return f"The plan for the new {building} carried"

    def estimate_sentence(self) -> Pieces:
        rng = self.rng
        if rng.random() < 0.6:
            return [
                (self.cost_head() + " an", _EST_OTHER),
                (" estimated", _EST_ESTIMATED),
                (" cost of", _EST_COST_OF),
                (self.cost_quantity(), _EST_QUANTITY),
                (".", _EST_OTHER),
            ]
        counted = " " + rng.choice(_EST_COUNTED)
        event = rng.choice(_EST_EVENTS) if rng.random() < 0.8 else self.noun()
        if rng.random() < 0.5:  # "An estimated 40,000 people attended the festival."
            return [
                ("An", _EST_OTHER),
                (" estimated", _EST_ESTIMATED),
                (self.count_quantity(), _EST_QUANTITY),
                (f"{counted} {rng.choice(_EST_ATTEND)} {event}.", _EST_OTHER),
            ]
        return [
            (f"The {event} drew an", _EST_OTHER),
            (" estimated", _EST_ESTIMATED),
            (self.count_quantity(), _EST_QUANTITY),
            (counted + ".", _EST_OTHER),
        ]


# ---------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------


def _check_shares(cfg: CorpusConfig) -> list[float]:
    shares = [
        cfg.share_greater_than,
        cfg.share_citation,
        cfg.share_prose_semicolon,
        cfg.share_caught,
        cfg.share_estimate,
    ]
    if any(s < 0 for s in shares) or sum(shares) > 1:
        raise ValueError(f"corpus shares must be >= 0 and sum to at most 1, got {shares}")
    low, high = cfg.sentences_per_document
    if not 1 <= low <= high:
        raise ValueError(
            f"corpus.sentences_per_document must be [min, max] with 1 <= min <= max, "
            f"got {cfg.sentences_per_document}"
        )
    return list(itertools.accumulate(shares))


def _assemble(sentences: list[Pieces]) -> Document:
    """Join sentences with single spaces (the space goes to the next sentence) and merge spans."""
    parts: list[str] = []
    spans: list[list[int]] = []
    position = 0
    for i, pieces in enumerate(sentences):
        for j, (text, label) in enumerate(pieces):
            if i > 0 and j == 0:
                text = " " + text
            end = position + len(text)
            if spans and spans[-1][2] == label:
                spans[-1][1] = end
            else:
                spans.append([position, end, label])
            parts.append(text)
            position = end
    return Document("".join(parts), [(s, e, lab) for s, e, lab in spans])


def generate_documents(
    cfg: CorpusConfig, n_documents: int, seed: int, progress: bool | None = None
) -> list[Document]:
    """`n_documents` documents drawn with `seed`, using the vocabulary of `cfg.seed`."""
    cumulative = _check_shares(cfg)
    generator = _SentenceGenerator(build_vocabulary(cfg), random.Random(seed))
    makers = (
        generator.greater_than_sentence,
        generator.citation_sentence,
        generator.prose_semicolon_sentence,
        generator.caught_sentence,
        generator.estimate_sentence,
    )
    rng = generator.rng
    low, high = cfg.sentences_per_document
    show = n_documents >= 5000 if progress is None else progress
    documents = []
    for _ in tqdm(range(n_documents), desc="generating documents", disable=not show, mininterval=1.0):
        sentences: list[Pieces] = []
        for _ in range(rng.randint(low, high)):
            kind = bisect.bisect_right(cumulative, rng.random())
            if kind < len(makers):
                sentences.append(makers[kind]())
            else:
                sentences.append([(generator.background_sentence(), _BG)])
        documents.append(_assemble(sentences))
    return documents


def check_document(document: Document) -> None:
    """Raise ValueError unless the spans cover the text exactly, in order, with valid labels."""
    position = 0
    for start, end, label in document.spans:
        if start != position or end <= start or not 0 <= label < len(LABELS):
            raise ValueError(f"bad span {(start, end, label)} at position {position}")
        position = end
    if position != len(document.text):
        raise ValueError(f"spans end at {position} but the text has {len(document.text)} characters")


# ---------------------------------------------------------------------------------------------
# Behaviour prompts
# ---------------------------------------------------------------------------------------------


def greater_than_prompts(
    cfg: CorpusConfig, seed: int, template: str = "organism", n_per_yy: int = 1, century: int | None = None
) -> list[GreaterThanPrompt]:
    """Prompts "The {noun} lasted from the year {CC}{YY} to the year {CC}" for YY = 00..99.

    template "organism" writes "from the year ... to the year ..."; "short" writes the paper's
    GPT-2 form "from {CC}{YY} to {CC}". `century` fixes CC (e.g. 17); by default it is drawn per
    prompt from the training centuries 11..19.
    """
    formats = {
        "organism": "The {noun} lasted from the year {cc}{yy:02d} to the year {cc}",
        "short": "The {noun} lasted from {cc}{yy:02d} to {cc}",
    }
    if template not in formats:
        raise ValueError(f"unknown greater-than template {template!r}; use one of {sorted(formats)}")
    if century is not None and century not in GREATER_THAN_CENTURIES:
        raise ValueError(f"century {century} is outside the training centuries {GREATER_THAN_CENTURIES}")
    generator = _SentenceGenerator(build_vocabulary(cfg), random.Random(derive_seed(seed, "greater_than")))
    prompts = []
    for yy in range(100):
        for _ in range(n_per_yy):
            noun = generator.gt_noun()
            cc = century if century is not None else generator.rng.choice(GREATER_THAN_CENTURIES)
            text = formats[template].format(noun=noun, cc=cc, yy=yy)
            prompts.append(GreaterThanPrompt(text=text, noun=noun, century=cc, yy=yy))
    return prompts


def _text_through(pieces: Pieces, label: int) -> str:
    """The text of `pieces` up to and including the last piece with `label`."""
    index = max(i for i, (_, lab) in enumerate(pieces) if lab == label)
    return "".join(text for text, _ in pieces[: index + 1])


def citation_semicolon_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[SemicolonPrompt]:
    """Citation sentences cut right after a semicolon between works: "... (Tavish et al., 2019;"."""
    generator = _SentenceGenerator(build_vocabulary(cfg), random.Random(derive_seed(seed, "citation")))
    prompts = []
    for _ in range(n):
        n_before = generator.rng.randint(1, 3)  # works before the cut
        pieces = generator.citation_sentence(n_works=n_before + 1)
        prompts.append(SemicolonPrompt(text=_text_through(pieces, _CIT_SEMI), kind="citation"))
    return prompts


def prose_semicolon_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[SemicolonPrompt]:
    """Prose sentences cut right after the semicolon: "The river was cold;"."""
    generator = _SentenceGenerator(build_vocabulary(cfg), random.Random(derive_seed(seed, "prose")))
    return [
        SemicolonPrompt(text=_text_through(generator.prose_semicolon_sentence(), _PROSE_SEMI), kind="prose")
        for _ in range(n)
    ]


def caught_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[CaughtPrompt]:
    """Alternating passive ("The thief was caught" -> " by") and active ("The girl caught" -> " the"/" a")."""
    generator = _SentenceGenerator(build_vocabulary(cfg), random.Random(derive_seed(seed, "caught")))
    prompts = []
    for i in range(n):
        passive = i % 2 == 0
        subject = generator.caught_subject(passive)
        text = subject + (" was caught" if passive else " caught")
        prompts.append(
            CaughtPrompt(text=text, passive=passive, expected_next=(" by",) if passive else (" the", " a"))
        )
    return prompts


def estimate_prompts(cfg: CorpusConfig, seed: int, n: int) -> list[EstimatePrompt]:
    """Prompts ending in "an estimated cost of"; a quantity (ESTIMATE_QUANTITY_STARTS) follows."""
    generator = _SentenceGenerator(build_vocabulary(cfg), random.Random(derive_seed(seed, "estimate")))
    return [
        EstimatePrompt(
            text=generator.cost_head() + " an estimated cost of", expected_next=ESTIMATE_QUANTITY_STARTS
        )
        for _ in range(n)
    ]
