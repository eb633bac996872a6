"""Circuit analysis with transcoders (DESIGN §4.3): exact direct attributions, for path search."""

from transcoder_lab.circuits.attribution import (
    EXPANDABLE_KINDS,
    LEAF_KINDS,
    Attribution,
    AttributionContext,
    Contributor,
    Root,
    attribute,
    child_root,
    feature_root,
    frozen_vector,
    ln_constant,
    logit_diff_root,
    root_value,
    top_contributors,
    vector_root,
)

__all__ = [
    "EXPANDABLE_KINDS",
    "LEAF_KINDS",
    "Attribution",
    "AttributionContext",
    "Contributor",
    "Root",
    "attribute",
    "child_root",
    "feature_root",
    "frozen_vector",
    "ln_constant",
    "logit_diff_root",
    "root_value",
    "top_contributors",
    "vector_root",
]
