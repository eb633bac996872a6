"""Sparse dictionaries, from the activations they train on to their evaluation.

- `dictionary`: the transcoder/SAE module and its files in sae-lens's format (re-exported here, so
  `from transcoder_lab.dictionaries import Dictionary, load_dictionary` reads as before);
- `activations`: MLP activations harvested from the model into shards;
- `training`: training one dictionary on those shards; `grid`: the grid of dictionaries a profile
  trains, one job per cell;
- `evaluation`, `profile_evaluation`: held-out metrics and the profile's evaluation report;
- `published`: transcoders published on the hub, imported into the same format.
"""

from transcoder_lab.dictionaries.dictionary import (
    Dictionary,
    DictionaryKind,
    DictionarySpec,
    load_dictionary,
    load_dictionary_metadata,
    load_dictionary_spec,
    load_log10_frequency,
    read_dictionary_config,
    save_dictionary,
)

__all__ = [
    "Dictionary",
    "DictionaryKind",
    "DictionarySpec",
    "load_dictionary",
    "load_dictionary_metadata",
    "load_dictionary_spec",
    "load_log10_frequency",
    "read_dictionary_config",
    "save_dictionary",
]
