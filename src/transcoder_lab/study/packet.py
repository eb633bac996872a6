"""Blinding: anonymised cards in shuffled order, the key kept apart, the key's hash in the packet.

1. Cards (`render_card`): each sampled feature's dashboard (`dashboards.build_dashboards` on the
   scanned contexts) rendered blind with `dashboard_html(show_values=False)`: activation bands
   with token highlighting and no numbers, arm, index, layer or kind. Logit effects are dropped
   from every card (only the transcoder writes to the residual stream, so their presence would
   reveal the arm); de-embeddings stay when `study.show_de_embedding` (both arms read the MLP
   input, so both have one).
2. Order: a permutation of all cards drawn with seed `study.seed + 2`; card k (1..N) is the k-th.
3. The key (`study/<profile>/key.json`, outside the packet): card -> arm and feature, the arms'
   dictionaries and L0s, the seed. It is written first; the SHA-256 of its exact bytes goes
   into the packet's manifest.
4. The packet (`study/<profile>/packet/`): `cards/card-NNN.html` (one fragment per card),
   `README.md` (how to rate) and `manifest.json` (card files with their SHA-256, the key's
   SHA-256, which also serves as the packet's id), written last so a packet with a manifest is
   complete. Nothing in it names an arm, a feature index, an activation value or the seed.
5. Scan data (`study/<profile>/scan.safetensors`, outside the packet, for the ground-truth
   rater): the scanned tokens, their labels, which tokens count, and per card (in card order,
   no arm) the counted tokens where its feature is active with their activations, stored as
   offsets into flat arrays (`active_offsets`, `active_index`, `active_values`).
6. Unblinding (`unblind`): the key file's SHA-256 must equal the manifest's (a key changed after
   the packet was built raises `KeyTamperedError`) and its cards must be the packet's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from transcoder_lab import io
from transcoder_lab.config import Config

if TYPE_CHECKING:  # the rating server imports this module and should start without TransformerLens
    from transcoder_lab.study.dashboards import FeatureDashboard
    from transcoder_lab.study.sample import ArmSample, ScanSet

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CARDS_DIR = "cards"

CATEGORIES = ("yes", "maybe", "no")
INSTRUCTIONS = (
    "Each card shows one feature: contexts where it fires, the token it fires on outlined, and "
    "every token shaded by how strongly the feature fires there (darker is stronger). The top "
    "band holds the strongest examples, the lettered bands weaker ones. Rate whether the "
    "feature has a clear, specific explanation that fits (nearly) all its examples: yes, maybe "
    "(a plausible explanation with exceptions or vague), or no. Tick context-free when it fires "
    "on one token (or a set of spellings of it) regardless of the context."
)


class KeyTamperedError(ValueError):
    """The key's SHA-256 differs from the one recorded in the packet when it was built."""


@dataclass
class Packet:
    directory: Path
    manifest: dict[str, Any]

    @property
    def n_cards(self) -> int:
        return int(self.manifest["n_cards"])

    @property
    def packet_id(self) -> str:
        return str(self.manifest["key_sha256"])

    def card_file(self, card: int) -> Path:
        """The card's file, only for a card number of this packet (never a path from outside)."""
        if not 1 <= card <= self.n_cards:
            raise KeyError(f"card {card} is not in this packet (cards 1..{self.n_cards})")
        return self.directory / self.manifest["cards"][card - 1]["file"]


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def render_card(dashboard: FeatureDashboard, tokenizer: Any, show_de_embedding: bool) -> str:
    """The blind HTML fragment of one dashboard (step 1)."""
    from transcoder_lab.study.dashboards import dashboard_html  # TransformerLens: kept off the server's start

    dashboard.logit_effects_top = dashboard.logit_effects_bottom = None
    return dashboard_html(dashboard, tokenizer, show_values=False, show_effects=show_de_embedding)


def card_order(n_cards: int, seed: int) -> list[int]:
    """Position i of the returned list is the sample index shown as card i + 1 (step 2)."""
    return torch.randperm(n_cards, generator=torch.Generator().manual_seed(seed + 2)).tolist()


def _clear(directory: Path) -> None:
    if directory.exists():
        if any(directory.iterdir()) and not (directory / MANIFEST).exists():
            raise FileExistsError(
                f"{directory} exists, is not empty and holds no {MANIFEST}; it is not a packet, so it is "
                "not overwritten. Move it away or choose another path."
            )
        shutil.rmtree(directory)


def packet_readme(profile: str, n_cards: int) -> str:
    return (
        f"# Blind feature study ({profile}, {n_cards} cards)\n\n{INSTRUCTIONS}\n\n"
        "Rate in the browser (served on 127.0.0.1 only; ratings are saved at once, per rater):\n\n"
        f"```bash\npython -m transcoder_lab.study serve study/{profile}/packet\n```\n\n"
        "then open http://127.0.0.1:8765 in a browser.\n\n"
        f"Ratings go to `ratings/{profile}/<rater>.json`; commit that file and run "
        "`dvc repro study_analysis`.\n"
    )


def write_packet(
    packet_dir: str | Path, key_path: str | Path, cards: list[str], key: dict[str, Any], profile: str
) -> Packet:
    """Write the key, then the packet's cards, README and manifest (steps 3 and 4).

    `cards[i]` is card i + 1's HTML; `key["cards"]` lists {"card", "arm", "feature"} for each."""
    packet_dir = Path(packet_dir)
    numbers = sorted(int(entry["card"]) for entry in key["cards"])
    if numbers != list(range(1, len(cards) + 1)):
        raise ValueError(f"the key lists cards {numbers[:5]}...; it must list 1..{len(cards)} once each")
    io.write_text(key_path, json.dumps(key, indent=2) + "\n")
    key_sha256 = sha256_file(key_path)
    _clear(packet_dir)
    width = max(3, len(str(len(cards))))
    entries = []
    for number, text in enumerate(cards, start=1):
        relative = f"{CARDS_DIR}/card-{number:0{width}d}.html"
        io.write_text(packet_dir / relative, text)
        entries.append(
            {"card": number, "file": relative, "sha256": hashlib.sha256(text.encode()).hexdigest()}
        )
    io.write_text(packet_dir / "README.md", packet_readme(profile, len(cards)))
    manifest = {
        "format": FORMAT_VERSION,
        "title": f"Blind feature study: {profile}",
        "profile": profile,
        "n_cards": len(cards),
        "categories": list(CATEGORIES),
        "instructions": INSTRUCTIONS,
        "key_sha256": key_sha256,
        "cards": entries,
    }
    io.write_json(packet_dir / MANIFEST, manifest)
    return Packet(packet_dir, manifest)


def load_packet(packet_dir: str | Path) -> Packet:
    packet_dir = Path(packet_dir)
    path = packet_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {packet_dir} is not a study packet. Build one with "
            "`dvc repro study_packet` (or experiments/study_packet.py)."
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION or len(manifest.get("cards", ())) != manifest.get("n_cards"):
        raise ValueError(f"{path} is not a format-{FORMAT_VERSION} packet manifest with one entry per card")
    return Packet(packet_dir, manifest)


def unblind(packet: Packet, key_path: str | Path) -> dict[str, Any]:
    """The key, after checking it is the one the packet was built with (step 6)."""
    actual = sha256_file(key_path)
    if actual != packet.packet_id:
        raise KeyTamperedError(
            f"the key {key_path} has SHA-256 {actual}, but the packet {packet.directory} recorded "
            f"{packet.packet_id} when it was built: the key was changed (or belongs to another packet). "
            "Restore the original key (e.g. `dvc checkout`); if the packet was rebuilt, its ratings "
            "must be redone on the new packet."
        )
    key = json.loads(Path(key_path).read_text())
    if sorted(int(entry["card"]) for entry in key["cards"]) != list(range(1, packet.n_cards + 1)):
        raise KeyTamperedError(
            f"the key {key_path} does not list exactly the packet's cards 1..{packet.n_cards}"
        )
    return key


# -- scan data for the ground-truth rater ------------------------------------------------------


@dataclass
class ScanData:
    tokens: Int[Tensor, "n n_ctx"]
    counted: Tensor  # bool [n, n_ctx]
    labels: Int[Tensor, "n n_ctx"] | None
    label_names: list[str] | None
    active_offsets: Int[Tensor, " n_cards_plus_1"]
    active_index: Int[Tensor, " n_active"]  # flat token index into tokens.reshape(-1)
    active_values: Float[Tensor, " n_active"]

    @property
    def n_cards(self) -> int:
        return len(self.active_offsets) - 1

    def card(self, card: int) -> tuple[Tensor, Tensor]:
        """(flat token indices, activations) of card `card` (1-based) where its feature is active."""
        start, stop = int(self.active_offsets[card - 1]), int(self.active_offsets[card])
        return self.active_index[start:stop], self.active_values[start:stop]


def write_scan(path: str | Path, scan: ScanSet, card_activations: list[Float[Tensor, "n n_ctx"]]) -> None:
    """Step 5: card_activations[i] is card i + 1's feature's activations on the scanned contexts."""
    indices, values, offsets = [], [], [0]
    counted = scan.counted.reshape(-1)
    for acts in card_activations:
        flat = acts.reshape(-1)
        index = torch.nonzero((flat > 0) & counted).flatten()
        indices.append(index)
        values.append(flat[index].float())
        offsets.append(offsets[-1] + len(index))
    tensors = {
        "tokens": scan.contexts.to(torch.int32),
        "counted": scan.counted.to(torch.uint8),
        "active_offsets": torch.tensor(offsets, dtype=torch.int64),
        "active_index": torch.cat(indices).to(torch.int64) if indices else torch.zeros(0, dtype=torch.int64),
        "active_values": torch.cat(values) if values else torch.zeros(0),
    }
    if scan.labels is not None:
        tensors["labels"] = scan.labels.to(torch.int32)
    metadata = {
        "format": str(FORMAT_VERSION),
        "label_names": json.dumps(scan.label_names),
        "source": scan.source,
    }
    io.write_safetensors(path, tensors, metadata)


def load_scan(path: str | Path) -> ScanData:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    labels = tensors.get("labels")
    return ScanData(
        tokens=tensors["tokens"].long(),
        counted=tensors["counted"].bool(),
        labels=labels.long() if labels is not None else None,
        label_names=json.loads(metadata.get("label_names", "null")),
        active_offsets=tensors["active_offsets"],
        active_index=tensors["active_index"],
        active_values=tensors["active_values"],
    )


# -- the whole packet from a config -------------------------------------------------------------


def build_packet(
    cfg: Config,
    model,
    scan: ScanSet,
    samples: dict[str, ArmSample],
    dictionaries: dict,
    activations: dict[str, Tensor],
    paths: dict[str, Path],
) -> tuple[Packet, dict[str, Any]]:
    """Dashboards of both arms' samples, shuffled into cards; the key, packet and scan data written.

    `activations[arm]`: [n, n_ctx, f], the sampled features' activations on the scanned contexts
    (transcoder_lab.study.sample.sample_features); `paths`: "packet", "key", "scan"."""
    from transcoder_lab.study.dashboards import (
        build_dashboards,  # TransformerLens: kept off the server's start
    )

    study = cfg.profile.study
    entries: list[tuple[str, int, str, Tensor]] = []  # (arm, feature, card html, activations)
    for name, sample in samples.items():
        dictionary = dictionaries[name]
        dashboards = build_dashboards(
            model, dictionary, scan.contexts, sample.features, n_examples=study.n_examples,
            window=study.window, n_quantile_bands=study.n_quantile_bands, batch_size=study.batch_size,
            seed=study.seed,
        )  # fmt: skip
        acts = activations[name]
        for column, dashboard in enumerate(dashboards):
            html = render_card(dashboard, model.tokenizer, study.show_de_embedding)
            entries.append((name, dashboard.feature, html, acts[..., column]))
    order = card_order(len(entries), study.seed)
    shown = [entries[i] for i in order]
    key = {
        "format": FORMAT_VERSION,
        "profile": cfg.profile.name,
        "seed": study.seed,
        "arms": {name: sample.arm.to_json() for name, sample in samples.items()},
        "sampling": {
            name: {"features": s.features, "replaced": s.replaced, "n_activating": s.n_activating}
            for name, s in samples.items()
        },
        "scan": {"source": scan.source, "n_contexts": len(scan.contexts), "n_counted_tokens": scan.n_counted},
        "cards": [
            {"card": i + 1, "arm": arm, "feature": feature} for i, (arm, feature, _, _) in enumerate(shown)
        ],
    }
    packet = write_packet(
        paths["packet"], paths["key"], [html for _, _, html, _ in shown], key, cfg.profile.name
    )
    write_scan(paths["scan"], scan, [acts for _, _, _, acts in shown])
    return packet, key
