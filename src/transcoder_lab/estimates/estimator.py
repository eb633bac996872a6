"""Per-stage estimates: every stage instance of dvc.yaml (`foreach` expanded against the composed
config) and, for each, its matmul FLOPs, peak device and host memory, host copies and what dominates
them, counted from the config by the formulas of `formulas` (the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from transcoder_lab.behaviour import HANNA_TEMPLATE
from transcoder_lab.case_studies.common import HELDOUT_CONTEXTS, settings_for
from transcoder_lab.case_studies.year_features import N_TESTED
from transcoder_lab.config import (
    REPO_ROOT,
    Analysis,
    CaseStudyConfig,
    Config,
    HarvestMode,
    ModelSource,
    SpliceAllSource,
    parse_cell,
)
from transcoder_lab.dictionaries.crosslayer import crosslayer_config
from transcoder_lab.dictionaries.published import PUBLISHED_REPO
from transcoder_lab.estimates.formulas import (
    ACTIVATION_COPIES,
    CORPUS_PROMPT_TOKENS,
    FLOAT32,
    GB,
    LOAD_COPIES,
    LOGIT_COPIES,
    N_PROMPT_GREATER_THAN,
    PROBE_TOKENS,
    SPLICED_BYTES_PER_FEATURE,
    TRAINING_BUFFER_COPIES,
    CrossLayerShape,
    DictShape,
    buffer_copy_bytes,
    cell_hooks,
    grid_dictionary,
    model_pass_flops,
    model_shape,
    prompt_tokens,
    published_dictionary,
)

# -- stages -------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One DVC stage instance: its matmul FLOPs and peak memory, and what dominates them."""

    name: str
    model_flops: float = 0.0  # transformer passes
    dictionary_flops: float = 0.0  # dictionary products (always float32)
    device_bytes: float = 0.0  # peak on the device that runs the model and trains
    host_bytes: float = 0.0  # peak in host RAM
    dominant: str = ""
    autocast: bool = False  # model_flops run under harvest.autocast_dtype
    io: str = ""  # downloads or disk writes, when they are the point
    host_copy_bytes: float = 0.0  # bytes the shuffle buffer copies on the host (stream mode)
    parts: dict[str, float] = field(default_factory=dict)  # FLOPs by part, for `dominant`

    @property
    def flops(self) -> float:
        return self.model_flops + self.dictionary_flops


def _dominant(parts: dict[str, float]) -> str:
    total = sum(parts.values())
    if total <= 0:
        return ""
    name, flops = max(parts.items(), key=lambda item: item[1])
    return f"{name} ({flops / total:.0%})"


@dataclass
class Settings:
    """What the estimate assumes beyond the config (command-line options)."""

    vocab: int | None = None
    tokens_per_document: float = 1100.0
    documents_per_file: int = 100_000


def stage_instances(raw: DictConfig) -> list[tuple[str, str]]:
    """(stage, instance name) of every stage of dvc.yaml, `foreach` expanded against `raw` as DVC
    does (`stage@item` for a list, `stage@key` for a mapping)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    out = []
    for name, body in stages.items():
        if "foreach" not in body:
            out.append((name, name))
            continue
        expression = str(body["foreach"]).strip()
        key = expression.removeprefix("${").removesuffix("}")
        items = OmegaConf.select(raw, key)
        if isinstance(items, DictConfig):
            keys = list(items.keys())
        elif isinstance(items, ListConfig | list):
            keys = list(items)
        else:
            keys = []
        out += [(name, f"{name}@{item}") for item in keys] or [
            (name, f"{name} (no instances: {key} is empty)")
        ]
    return out


class Estimator:
    """Per-stage FLOPs and memory of one composed config (the package docstring)."""

    def __init__(self, cfg: Config, settings: Settings | None = None) -> None:
        self.cfg, self.settings = cfg, settings or Settings()
        self.shape = model_shape(cfg, self.settings.vocab)
        profile = cfg.profile
        self.pretrained = profile.model.source == ModelSource.pretrained
        self.stream = profile.dictionaries.harvest.mode == HarvestMode.stream
        self.context = profile.dictionaries.harvest.context_size
        self.model_bytes = self.shape.n_params * FLOAT32
        self.load_bytes = LOAD_COPIES * self.model_bytes if self.pretrained else self.model_bytes

    # stage name -> method
    def estimate(self, stage: str, instance: str) -> Stage:
        item = instance.split("@", 1)[1] if "@" in instance else None
        method = getattr(self, f"stage_{stage}", None)
        if method is None:
            return Stage(instance, dominant="not estimated (a stage this script does not know)")
        if "(no instances" in instance:
            return Stage(instance, dominant="nothing to run")
        return method(instance, item) if item is not None else method(instance)

    # -- model loading and the organism's own stages -------------------------------------------

    def stage_corpus(self, name: str) -> Stage:
        if self.cfg.profile.corpus is None:
            return Stage(name, dominant="writes a manifest (pretrained models bring their own text)")
        return Stage(name, dominant="generates the organism's corpus in Python (not matmul work)")

    def stage_organism(self, name: str) -> Stage:
        profile = self.cfg.profile
        if self.pretrained:
            size = self.shape.hub_params * self.shape.hub_bytes_per_param
            return Stage(
                name, host_bytes=self.load_bytes, dominant="fetches the model once (I/O)",
                io=f"downloads ~{size / GB:.2f} GB of weights from {self.shape.hub_repo or 'the hub'}",
            )  # fmt: skip
        training = profile.training
        assert training is not None  # organism profiles have it (load_config)
        tokens = training.max_steps * training.batch_size * profile.model.n_ctx
        flops = 3 * tokens * model_pass_flops(self.shape, self.shape.n_layers, profile.model.n_ctx, True)
        return Stage(
            name, model_flops=flops, host_bytes=4 * self.model_bytes,
            dominant="organism training (forward + backward, 3 x a forward pass)",
        )  # fmt: skip

    def stage_behaviour(self, name: str) -> Stage:
        behaviour, shape = self.cfg.profile.behaviour, self.shape
        if self.pretrained:  # the paper's 100 prompts and Hanna et al.'s n_prompts
            paper = prompt_tokens("The war lasted from 1732 to 17")
            hanna = prompt_tokens(HANNA_TEMPLATE.format(noun="war", XX="17", YY="32"))
            counts = [(N_PROMPT_GREATER_THAN, paper), (behaviour.n_prompts, hanna)]
        else:  # five mechanisms, n_prompts each (two for citations), corpus sentences
            counts = [(6 * behaviour.n_prompts, CORPUS_PROMPT_TOKENS)]
        flops = sum(n * t * model_pass_flops(shape, shape.n_layers, t, True) for n, t in counts)
        logits = behaviour.batch_size * max(t for _, t in counts) * shape.vocab * FLOAT32
        return Stage(
            name, model_flops=flops, device_bytes=self.model_bytes + logits, host_bytes=self.load_bytes,
            dominant="prompt passes (tiny)",
        )  # fmt: skip

    def stage_activations(self, name: str) -> Stage:
        grid = self.cfg.profile.dictionaries
        if self.stream:
            return Stage(name, dominant="writes a manifest (stream mode: harvested while training)")
        harvest = grid.harvest
        tokens = harvest.n_tokens + harvest.heldout_tokens
        n_blocks = max(grid.layers) + 1
        flops = tokens * model_pass_flops(self.shape, n_blocks, self.context, False)
        hooks = 2 * len(grid.layers)
        pending = 2 * harvest.shard_tokens * hooks * self.shape.d_model * FLOAT32
        return Stage(
            name, model_flops=flops, device_bytes=self.model_bytes + self._pass_bytes(),
            host_bytes=max(self.load_bytes, pending), autocast=harvest.autocast_dtype is not None,
            dominant=f"harvesting {tokens:,} tokens through {n_blocks} blocks into shards",
        )  # fmt: skip

    # -- dictionaries --------------------------------------------------------------------------

    def _pass_bytes(self) -> float:
        """Transient activations of one block during a harvest pass (no gradients)."""
        harvest, shape = self.cfg.profile.dictionaries.harvest, self.shape
        rows = harvest.batch_contexts * self.context
        return rows * (shape.d_mlp + 4 * shape.d_model) * FLOAT32 + (
            harvest.batch_contexts * shape.n_heads * self.context**2 * FLOAT32 * 2
        )

    def heldout_tokens(self) -> int:
        """Rows the held-out metrics of a cell read."""
        if self.stream:
            return self.cfg.profile.evaluation.n_contexts * self.context
        return self.cfg.profile.dictionaries.harvest.heldout_tokens

    def stage_dictionaries(self, name: str, cell: str) -> Stage:
        layer, kind = parse_cell(str(cell))
        grid, shape = self.cfg.profile.dictionaries, self.shape
        training = grid.training
        dictionary, n_l1, hooks = grid_dictionary(self.cfg, kind), len(grid.sweep(kind)), cell_hooks(kind)
        tokens = training.n_steps * training.batch_size
        heldout = self.heldout_tokens()
        parts = {
            "dictionary training": tokens * n_l1 * dictionary.train_flops_per_token,
            "held-out metrics": heldout * n_l1 * dictionary.forward_flops_per_token,
        }
        model = {}
        if self.stream:
            per_token = model_pass_flops(shape, layer + 1, self.context, False)
            model = {"harvesting": tokens * per_token, "held-out harvest": heldout * per_token}
        device = (
            (self.model_bytes + self._pass_bytes() if self.stream else 0)
            + n_l1 * dictionary.training_bytes
            + ACTIVATION_COPIES * training.batch_size * dictionary.d_sae * FLOAT32
            + training.batch_size * hooks * shape.d_model * FLOAT32
        )
        buffer = TRAINING_BUFFER_COPIES * grid.harvest.buffer_tokens * hooks * shape.d_model * FLOAT32
        host = max(self.load_bytes if self.stream else 0, buffer + heldout * hooks * shape.d_model * FLOAT32)
        checkpoint = n_l1 * 3 * dictionary.params * FLOAT32
        saved = n_l1 * dictionary.params * FLOAT32
        copies = 0.0
        if self.stream:
            harvested = grid.harvest.batch_contexts * self.context
            copies = buffer_copy_bytes(
                grid.harvest.buffer_tokens, harvested, math.ceil(tokens / harvested),
                hooks * shape.d_model * FLOAT32, training.batch_size,
            )  # fmt: skip
        return Stage(
            name, model_flops=sum(model.values()), dictionary_flops=sum(parts.values()),
            device_bytes=device, host_bytes=host, autocast=grid.harvest.autocast_dtype is not None,
            dominant=_dominant(parts | model), parts=parts | model, host_copy_bytes=copies,
            io=f"checkpoint {checkpoint / GB:.1f} GB (rewritten every {training.checkpoint_every} steps), "
            f"saves {saved / GB:.2f} GB",
        )  # fmt: skip

    def stage_crosslayer(self, name: str, l1_coefficient: str) -> Stage:
        """One CLT: training on the per-layer transcoders' batches (every layer's hooks at once; in
        stream mode harvested by a pass through every block) and its held-out metrics."""
        settings, grid, shape = crosslayer_config(self.cfg), self.cfg.profile.dictionaries, self.shape
        n_layers, d = shape.n_layers, shape.d_model
        clt = CrossLayerShape(n_layers, d, settings.expansion_factor * d, d)
        batch = grid.training.batch_size
        tokens, heldout, hooks = settings.training.n_steps * batch, self.heldout_tokens(), 2 * n_layers
        parts = {
            "CLT training": tokens * clt.train_flops_per_token,
            "held-out metrics": heldout * clt.forward_flops_per_token,
        }
        model = {}
        if self.stream:
            per_token = model_pass_flops(shape, n_layers, self.context, False)
            model = {"harvesting": tokens * per_token, "held-out harvest": heldout * per_token}
        device = (
            (self.model_bytes + self._pass_bytes() if self.stream else 0)
            + clt.training_bytes
            + ACTIVATION_COPIES * batch * n_layers * clt.d_sae * FLOAT32
            + batch * hooks * d * FLOAT32
        )
        buffer = TRAINING_BUFFER_COPIES * grid.harvest.buffer_tokens * hooks * d * FLOAT32
        host = max(self.load_bytes if self.stream else 0, buffer + heldout * hooks * d * FLOAT32)
        return Stage(
            name, model_flops=sum(model.values()), dictionary_flops=sum(parts.values()),
            device_bytes=device, host_bytes=host, autocast=grid.harvest.autocast_dtype is not None,
            dominant=_dominant(parts | model), parts=parts | model,
            io=f"checkpoint {3 * clt.params * FLOAT32 / GB:.1f} GB, saves {clt.params * FLOAT32 / GB:.2f} GB",
        )  # fmt: skip

    def stage_import_transcoders(self, name: str, layer: str) -> Stage:
        dictionary = published_dictionary(self.cfg)
        size = 2 * dictionary.d_in * dictionary.d_sae * FLOAT32
        return Stage(
            name, dictionary_flops=2 * dictionary.d_in * dictionary.d_sae, host_bytes=3 * size,
            dominant="I/O: two files from the hub, one dictionary converted",
            io=f"downloads ~{size / 1e6:.0f} MB (weights) + {dictionary.d_sae * FLOAT32 / 1e3:.0f} kB "
            f"(sparsity) from {PUBLISHED_REPO}",
        )  # fmt: skip

    # -- evaluation ----------------------------------------------------------------------------

    def splice_sets(self) -> tuple[dict[str, list[DictShape]], set[tuple[int, ...]]]:
        """The dictionary sets `evaluate` splices (experiments/evaluate.py), by name, and the distinct
        sets of layers it zero-ablates (one pass each per batch)."""
        evaluation, grid = self.cfg.profile.evaluation, self.cfg.profile.dictionaries
        sets: dict[str, list[DictShape]] = {}
        zero: set[tuple[int, ...]] = set()
        for layer, kind in grid.parsed_cells:
            for sparsity in grid.sweep(kind):
                sets[f"{kind}@L{layer} {sparsity.setting}"] = [grid_dictionary(self.cfg, kind)]
                zero.add((layer,))
        every = evaluation.splice_all_layers or grid.layers_of("transcoder")
        named = {"splice_all": every} | {f"subset:{k}": v for k, v in evaluation.splice_subsets.items()}
        for set_name, layers in named.items():
            one = (
                published_dictionary(self.cfg)
                if evaluation.splice_all_source == SpliceAllSource.published
                else grid_dictionary(self.cfg, "transcoder")
            )
            sets[set_name] = [one] * len(layers)
            zero.add(tuple(sorted(layers)))
        return sets, zero

    def stage_evaluate(self, name: str) -> Stage:
        evaluation, shape = self.cfg.profile.evaluation, self.shape
        sets, zero_sets = self.splice_sets()
        tokens = evaluation.n_contexts * self.context
        full = model_pass_flops(shape, shape.n_layers, self.context, True)
        passes = 1 + len(sets) + len(zero_sets)
        splice = tokens * sum(d.forward_flops_per_token for ds in sets.values() for d in ds)
        parts = {f"{passes} full passes (1 clean, {len(sets)} spliced, {len(zero_sets)} zero-ablated)": passes
                 * tokens * full, "the spliced dictionaries": splice}  # fmt: skip
        rows = evaluation.batch_size * self.context
        largest = max(d.d_sae for ds in sets.values() for d in ds)
        device = (
            self.model_bytes
            + sum(d.params * FLOAT32 for ds in sets.values() for d in ds)
            + LOGIT_COPIES * rows * shape.vocab * FLOAT32
            + SPLICED_BYTES_PER_FEATURE * rows * largest
        )
        n_dicts = sum(len(ds) for ds in sets.values())
        return Stage(
            name, model_flops=passes * tokens * full, dictionary_flops=splice, device_bytes=device,
            host_bytes=self.load_bytes, dominant=_dominant(parts), parts=parts,
            io=f"{n_dicts} dictionaries loaded at once ({tokens:,} held-out tokens)",
        )  # fmt: skip

    # -- case studies --------------------------------------------------------------------------

    def circuit_dictionaries(self) -> dict[int, DictShape]:
        """The transcoders the circuits use (case_studies.common.circuit_transcoders)."""
        profile = self.cfg.profile
        if profile.published_transcoder_layers:
            return {layer: published_dictionary(self.cfg) for layer in profile.published_transcoder_layers}
        return {
            layer: grid_dictionary(self.cfg, "transcoder")
            for layer in profile.dictionaries.layers_of("transcoder")
        }

    def _paths_flops(self, study: CaseStudyConfig, layer: int, transcoders: dict[int, DictShape], t: int):
        """Attribution context (one spliced pass on the prompt), then one attribution per expanded
        node: a pullback W_dec v for every transcoder at or below the node's layer."""
        shape = self.shape
        nodes = 1 + (study.search.n_iterations - 1) * study.search.n_branches
        pullbacks = sum(2 * d.d_sae * d.d_out for at, d in transcoders.items() if at <= layer)
        heads = layer * shape.n_heads * t * 4 * shape.d_model * shape.d_head  # OV per head and source
        context = t * (model_pass_flops(shape, shape.n_layers, t, True)
                       + sum(d.forward_flops_per_token for d in transcoders.values()))  # fmt: skip
        return context + nodes * (pullbacks + heads), nodes

    def stage_case_study(self, name: str, study_name: str) -> Stage:
        study = self.cfg.case_study[study_name]
        try:
            settings = settings_for(self.cfg, study, study_name)
        except ValueError:
            return Stage(name, dominant=f"not configured for {self.cfg.profile.name}: writes a note")
        transcoders = self.circuit_dictionaries()
        memory = self.model_bytes + sum(d.params * FLOAT32 for d in transcoders.values())
        if study.analysis == Analysis.greater_than:
            parts = self.greater_than_parts(study, settings, transcoders)
        else:
            parts = self.feature_study_parts(study, settings, transcoders)
        model = sum(v for k, v in parts.items() if not k.startswith("dictionary"))
        return Stage(
            name, model_flops=model, dictionary_flops=sum(parts.values()) - model, device_bytes=memory,
            host_bytes=max(self.load_bytes, memory), dominant=_dominant(parts), parts=parts,
        )  # fmt: skip

    def greater_than_parts(self, study: CaseStudyConfig, settings, transcoders: dict[int, DictShape]):
        """case_studies.greater_than.run_greater_than, counted step by step (its module docstring)."""
        shape, n = self.shape, N_PROMPT_GREATER_THAN
        if self.cfg.profile.corpus is None:
            t = prompt_tokens("The war lasted from 1732 to 17")
        else:
            t = prompt_tokens("The siege lasted from the year 1732 to the year 17")
        tokens = n * t

        def full(count: int) -> float:
            return count * tokens * model_pass_flops(shape, shape.n_layers, t, True)

        def upto(layer: int, count: int = 1) -> float:
            return count * tokens * model_pass_flops(shape, layer + 1, t, False)

        # an unset layer is chosen from the data: count the most expensive one (layer 0)
        layer = settings.layer if settings.layer is not None else 0
        distinct = 1 if settings.layer is not None else 2
        dictionary = transcoders.get(layer) or next(iter(transcoders.values()))
        n_max = min(settings.n_components, max(dictionary.d_sae, shape.d_mlp))
        later = shape.n_layers - layer - 1
        # one evaluation of the blocks after the layer, per n and kind, on every prompt token
        after = (
            tokens * (later * 2 * shape.block_params + 2 * later * t * shape.d_model)
            + n * 2 * shape.d_model * 100
        )

        def curves(protocols: int) -> float:
            return protocols * (upto(layer) + 2 * (n_max + 1) * after)

        def basics() -> float:  # spliced, removed, ranking (encodes at the last token only)
            return full(2) + upto(layer)

        choose = full(1 + 2 * len(transcoders) + 1) + sum(upto(at) for at in transcoders)
        scores = distinct * basics() + (full(1) if settings.feature is not None else 0.0)
        resamples = settings.n_prompt_resamples * (full(1) + basics() + curves(1))
        paths, _ = self._paths_flops(study, layer, transcoders, t)
        effects = N_TESTED * 4 * shape.d_model * shape.vocab
        dictionary_work = (distinct + 1) * tokens * dictionary.forward_flops_per_token + 2 * distinct * (
            tokens * dictionary.encode_flops_per_token
        )
        return {
            f"choosing the layer ({2 * len(transcoders) + 2} full passes)": choose,
            f"curves (2 protocols x 2 kinds x {n_max + 1} n, blocks after layer {layer})": curves(2),
            "scores spliced / removed / ablated": scores,
            f"prompt resamples ({settings.n_prompt_resamples})": resamples,
            "paths (attribution per node) and effects": paths + effects,
            "dictionary encodes and splices": dictionary_work,
        }

    def feature_study_parts(self, study: CaseStudyConfig, settings, transcoders: dict[int, DictShape]):
        """case_studies.feature.run_feature_study, counted step by step."""
        shape = self.shape
        organism = self.cfg.profile.corpus is not None
        layer = settings.layer if settings.layer is not None else max(transcoders)
        texts = settings.prompts + settings.contrast_prompts
        t = max((prompt_tokens(text) for text in texts), default=CORPUS_PROMPT_TOKENS)
        n_prompts = len(texts) if texts else 2 * settings.n_prompts
        parts: dict[str, float] = {}
        if study.blind:
            rows = shape.vocab * sum(PROBE_TOKENS)
            parts["blind token probes (every vocabulary token, 2 probes)"] = rows * model_pass_flops(
                shape, layer + 1, max(PROBE_TOKENS), False
            )
        paths, nodes = self._paths_flops(study, layer, transcoders, t)
        parts["paths (attribution per node)"] = paths
        spliced = sum(d.forward_flops_per_token for d in transcoders.values())
        parts[f"ablation check ({nodes} nodes) and splices"] = (
            (nodes + 2 + 2 * n_prompts) * t * (model_pass_flops(shape, shape.n_layers, t, True) + spliced)
        )
        if organism:  # the root's selection and the dashboard over labelled held-out contexts
            tokens = HELDOUT_CONTEXTS * self.context
            parts["selection and dashboard scans"] = (
                2 * tokens * model_pass_flops(shape, max(transcoders) + 1, self.context, False)
            )
            parts["dictionary encodes of the scans"] = (
                2 * tokens * sum(d.encode_flops_per_token for d in transcoders.values())
            )
        return parts

    # -- the rest --------------------------------------------------------------------------------

    def stage_families(self, name: str) -> Stage:
        if not self.cfg.profile.families.get("mechanisms"):
            return Stage(name, dominant="nothing to compare (no families block: organism profiles only)")
        return Stage(name, dominant="full graphs of every prompt and family (organism scale; not estimated)")

    def stage_report(self, name: str) -> Stage:
        return Stage(name, dominant="writes REPORT.md (no model work)")

    def stage_study_analysis(self, name: str) -> Stage:
        study = self.cfg.profile.study
        return Stage(name, dominant=f"ratings and {study.n_bootstrap:,} bootstrap draws (no model work)")

    def stage_study_packet(self, name: str) -> Stage:
        study, shape = self.cfg.profile.study, self.shape
        tokens = max(1, study.n_tokens // self.context) * self.context
        arms = [grid_dictionary(self.cfg, "transcoder"), grid_dictionary(self.cfg, "sae_mlp_in")]
        passes = 3 * tokens * model_pass_flops(shape, study.layer + 1, self.context, False)
        encodes = 2 * tokens * sum(d.encode_flops_per_token for d in arms)
        parts = {"3 passes to the study layer": passes, "2 encodes per arm": encodes}
        chunk = study.batch_size * self.context * max(d.d_sae for d in arms)
        device = self.model_bytes + sum(d.params * FLOAT32 for d in arms) + 2 * chunk * FLOAT32
        kept = (
            tokens * shape.d_model * FLOAT32 + chunk * (FLOAT32 + 2) + 2 * tokens * study.n_per_arm * FLOAT32
        )
        host = max(self.load_bytes, kept)
        return Stage(
            name, model_flops=passes, dictionary_flops=encodes, device_bytes=device, host_bytes=host,
            dominant=_dominant(parts), parts=parts, io=f"{tokens:,} scanned tokens",
        )  # fmt: skip

    # -- the text source ---------------------------------------------------------------------------

    def text_reach(self) -> dict[str, Any] | None:
        """How far into the text source a run reads: documents and, at `documents_per_file`, files."""
        source = self.cfg.profile.text
        if source is None:
            return None
        grid, profile = self.cfg.profile.dictionaries, self.cfg.profile
        per_document = self.settings.tokens_per_document + 1  # each document is led by one BOS

        def documents(tokens: int) -> int:
            contexts = math.ceil(tokens / self.context)  # every context: BOS + context - 1 text tokens
            return math.ceil(contexts * (self.context - 1) / per_document)

        training_tokens = grid.training.n_steps * grid.training.batch_size + grid.harvest.buffer_tokens
        heldout_tokens = max(
            profile.evaluation.n_contexts * self.context,
            max(1, profile.study.n_tokens // self.context) * self.context,
        )
        training_documents = documents(training_tokens)
        last = max(training_documents, source.heldout_skip_documents + documents(heldout_tokens))
        return {
            "repo": source.repo,
            "revision": source.revision,
            "files_glob": source.files,
            "training_tokens": training_tokens,
            "training_documents": training_documents,
            "heldout_skip_documents": source.heldout_skip_documents,
            "heldout_tokens": heldout_tokens,
            "last_document": last,
            "files": math.ceil(last / self.settings.documents_per_file),
            "training_reaches_heldout": training_documents > source.heldout_skip_documents,
        }
