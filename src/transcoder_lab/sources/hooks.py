"""The TransformerLens hook points a dictionary reads and writes, by name.

A module of its own, free of TransformerLens, so that what only names hooks (a dictionary's files,
the import of the published transcoders) starts without loading it.
"""


def mlp_in_hook(layer: int) -> str:
    """The MLP's input under fold_ln: the normalised residual stream after attention."""
    return f"blocks.{layer}.ln2.hook_normalized"


def mlp_out_hook(layer: int) -> str:
    """The MLP's output, before it is added to the residual stream."""
    return f"blocks.{layer}.hook_mlp_out"
