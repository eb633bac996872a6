"""DVC stage `study_packet`: sample both arms' features and write the blind packet, key and scan data.

Writes `study/<profile>/packet/` (what raters see), `study/<profile>/key.json` (card -> arm and
feature; its SHA-256 is in the packet) and `study/<profile>/scan.safetensors` (activations and
labels for the ground-truth rater). See transcoder_lab.study.sample and .packet.
"""

import time

from transcoder_lab.config import Config
from transcoder_lab.paths import study_key_file, study_packet_dir, study_scan_file
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import stage_main
from transcoder_lab.study.packet import build_packet
from transcoder_lab.study.sample import sample_features, scan_contexts


def run(cfg: Config) -> dict:
    start = time.perf_counter()
    model = load_model(cfg.profile, cfg.paths.models)
    scan = scan_contexts(cfg, model)
    samples, dictionaries, activations = sample_features(cfg, model, scan)
    paths = {"packet": study_packet_dir(cfg), "key": study_key_file(cfg), "scan": study_scan_file(cfg)}
    packet, key = build_packet(cfg, model, scan, samples, dictionaries, activations, paths)
    for name, sample in samples.items():
        arm = sample.arm
        print(
            f"{name}: {arm.path} (held-out L0 {arm.l0:.2f}), {arm.n_live} live of {arm.d_sae}, "
            f"{len(sample.features)} sampled, {len(sample.replaced)} replaced"
        )
    print(
        f"packet {paths['packet']}: {packet.n_cards} cards from {scan.n_counted} scanned tokens; "
        f"key {paths['key']} (sha256 {packet.packet_id[:12]}...) in {time.perf_counter() - start:.1f} s"
    )
    return {"packet": packet, "key": key}


if __name__ == "__main__":
    stage_main(run)()
