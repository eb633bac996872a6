"""How long and how much memory each DVC stage of a profile needs: FLOPs and peak memory from the
config alone, turned into seconds with throughputs measured on this machine in the same run and an
assumed GPU. The estimator is `transcoder_lab.estimates`; its package docstring writes out the
formulas, the memory model and what is measured.

    python benchmarks/estimate_paper_runs.py gpt2_small                 # ~25 s on 2 shared cores
    python benchmarks/estimate_paper_runs.py pythia_410m
    python benchmarks/estimate_paper_runs.py gpt2_small budget=smoke    # any Hydra override
    python benchmarks/estimate_paper_runs.py gpt2_small --check         # + real trainer steps (~45 s)
"""

from __future__ import annotations

import sys

from transcoder_lab.estimates.cli import main

if __name__ == "__main__":
    main(sys.argv[1:])
