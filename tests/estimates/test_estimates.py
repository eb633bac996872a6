"""transcoder_lab.estimates: its FLOP formulas against a hand count on a tiny config, the shuffle
buffer's copy count against the real buffer, and the command line (`cli.main`, which
benchmarks/estimate_paper_runs.py runs) on the paper profile (every dvc.yaml stage listed) and, with
--check, on tiny."""

import re

import yaml

from transcoder_lab.config import (
    REPO_ROOT,
    Config,
    DictionariesConfig,
    DictionaryTrainingConfig,
    EvaluationConfig,
    HarvestConfig,
    ModelConfig,
    ProfileConfig,
    TextSourceConfig,
    compose,
)
from transcoder_lab.estimates.cli import main
from transcoder_lab.estimates.estimator import Estimator, Settings, stage_instances
from transcoder_lab.estimates.formulas import buffer_copy_bytes, model_pass_flops


def tiny_stream_config() -> Config:
    """A pretrained-style (stream mode) profile small enough to count by hand: 3 layers, d_model 16,
    d_mlp 32, 4-token contexts, one transcoder cell at layer 1 with 2 L1 values, d_sae 64."""
    return Config(
        profile=ProfileConfig(
            name="hand",
            device="cpu",
            model=ModelConfig(
                source="pretrained",
                pretrained_name="gpt2",
                n_layers=3,
                d_model=16,
                n_heads=2,
                d_head=8,
                d_mlp=32,
                n_ctx=64,
            ),  # fmt: skip
            text=TextSourceConfig(),
            dictionaries=DictionariesConfig(
                cells=["L1_transcoder"],
                l1_coefficients=[1e-3, 2e-3],
                expansion_factor=4,
                harvest=HarvestConfig(mode="stream", context_size=4, batch_contexts=2, buffer_tokens=16),
                training=DictionaryTrainingConfig(batch_size=8, n_steps=3),
            ),
            evaluation=EvaluationConfig(
                n_contexts=2, batch_size=1, splice_all_l1=1e-3, splice_all_layers=[1]
            ),
        )
    )


def test_flop_formulas_equal_a_hand_count():
    estimator = Estimator(tiny_stream_config(), Settings(vocab=10))
    # One block's weight matrices: 4 x 16^2 (attention) + 2 x 16 x 32 (MLP) = 1024 + 1024 = 2048.
    assert estimator.shape.block_params == 2048
    # Harvest to layer 1 = 2 blocks, per token: 2 x 2 x 2048 + attention 2 x 2 x 4 x 16 = 8192 + 256.
    harvest_per_token = 8448
    assert model_pass_flops(estimator.shape, 2, 4, False) == harvest_per_token
    # A full pass with logits: 3 x 2 x 2048 + 2 x 3 x 4 x 16 + 2 x 16 x 10 = 12288 + 384 + 320.
    full_per_token = 12992
    assert model_pass_flops(estimator.shape, 3, 4, True) == full_per_token

    stage = estimator.estimate("dictionaries", "dictionaries@L1_transcoder")
    tokens, heldout = 3 * 8, 2 * 4  # n_steps x batch; evaluation.n_contexts x context
    train_per_token = 6 * (16 + 16) * 64  # per dictionary: encoder and decoder, forward and backward
    forward_per_token = 2 * (16 + 16) * 64
    assert stage.model_flops == (tokens + heldout) * harvest_per_token  # 270,336
    assert stage.dictionary_flops == 2 * (tokens * train_per_token + heldout * forward_per_token)  # 655,360
    params = 16 * 64 + 64 * 16 + 64 + 16 + 16  # W_enc, W_dec, b_enc, b_dec, b_dec_out
    model_bytes = estimator.shape.n_params * 4
    activations = 4 * 8 * 64 * 4  # pre-activations, activations and their gradients, float32
    batch_rows = 8 * 2 * 16 * 4  # the batch of both hooks
    harvest_pass = 2 * 4 * (32 + 4 * 16) * 4 + 2 * 2 * 4 * 4 * 4 * 2  # one block's activations, scores
    expected_device = model_bytes + harvest_pass + 2 * 16 * params + activations + batch_rows
    assert stage.device_bytes == expected_device

    # evaluate: 2 single dictionaries + the splice-all set [L1] = 3 spliced sets, one distinct
    # zero-ablated layer set {1}: 1 clean + 3 spliced + 1 zero-ablated = 5 full passes over 8 tokens,
    # and 3 dictionary forwards inside the spliced passes.
    evaluate = estimator.estimate("evaluate", "evaluate")
    assert evaluate.model_flops == 5 * heldout * full_per_token  # 519,680
    assert evaluate.dictionary_flops == 3 * heldout * forward_per_token  # 98,304


def test_crosslayer_formulas_equal_a_hand_count():
    """A CLT over the 3 layers at 2 x 16 = 32 features a layer, 5 steps of the 8-row batches."""
    cfg = tiny_stream_config()
    cfg.profile.crosslayer = {"l1_coefficients": [1e-3], "expansion_factor": 2, "training": {"n_steps": 5}}
    estimator = Estimator(cfg, Settings(vocab=10))
    stage = estimator.estimate("crosslayer", "crosslayer@0.001")
    encoders, decoders = 3 * 16 * 32, (3 + 2 + 1) * 32 * 16  # layer l writes to layers l..2
    tokens, heldout = 5 * 8, 2 * 4
    assert stage.dictionary_flops == tokens * 6 * (encoders + decoders) + heldout * 2 * (encoders + decoders)
    # a pass through all 3 blocks per harvested token: 3 x 2 x 2048 + 2 x 3 x 4 x 16
    assert stage.model_flops == (tokens + heldout) * (3 * 2 * 2048 + 2 * 3 * 4 * 16)
    assert "checkpoint" in stage.io
    assert "nothing to compare" in estimator.estimate("families", "families").dominant


def test_shuffle_buffer_copies_equal_a_hand_count():
    # capacity 16 rows, batches of 8 rows in and out, 3 batches in, 1 byte a row:
    # in 1: size 8 (listed, no copy); in 2: size 16, full: gathered (cat: 16), permuted (16), half
    # out -> 8 kept; in 3: size 16: gathered (16), permuted (16), half out -> 8. Total 16 x 4 = 64.
    assert buffer_copy_bytes(16, 8, 3, 1, 8) == 64
    assert buffer_copy_bytes(16, 8, 3, 1, 8, flush=True) == 72  # the rest shuffled out


def test_shuffle_buffer_copies_match_the_real_buffer(monkeypatch):
    """The model counts the rows the real ShuffleBuffer concatenates and permutes."""
    import torch

    from transcoder_lab.dictionaries.activations import ShuffleBuffer

    counted = {"rows": 0}
    cat, randperm = torch.cat, torch.randperm

    def counting_cat(tensors, *args, **kwargs):
        out = cat(tensors, *args, **kwargs)
        counted["rows"] += len(out)
        return out

    def counting_randperm(n, *args, **kwargs):  # each permutation gathers n rows
        counted["rows"] += n
        return randperm(n, *args, **kwargs)

    monkeypatch.setattr(torch, "cat", counting_cat)
    monkeypatch.setattr(torch, "randperm", counting_randperm)
    capacity, incoming, batch, n_incoming = 64, 16, 8, 37
    for _ in ShuffleBuffer(capacity, batch, seed=0)(
        {"a": torch.zeros(incoming, 1)} for _ in range(n_incoming)
    ):
        pass
    assert counted["rows"] == buffer_copy_bytes(capacity, incoming, n_incoming, 1, batch, flush=True)


def test_script_prints_every_dvc_stage_for_the_paper_profile(capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    result = main(["gpt2_small", "--repeats", "1", "--matmul-rows", "16", "--buffer-rows", "8192"])
    out = capsys.readouterr().out
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    for name in stages:
        assert name in out, name
    instances = [instance for _, instance in stage_instances(compose(["profile=gpt2_small"]))]
    assert "dictionaries@L8_transcoder" in instances and "import_transcoders@11" in instances
    for instance in instances:  # a grouped row names every instance: stage@{a, b, ...}
        stage, _, item = instance.partition("@")
        grouped = re.search(rf"{stage}@\{{([^}}]*)\}}", out)
        assert instance in out or (grouped and item in grouped.group(1).split(", ")), instance
    by_name = {stage.name: stage for stage in result["stages"]}
    training = by_name["dictionaries@L8_transcoder"]
    assert training.dictionary_flops > training.model_flops > 0 and training.host_copy_bytes > 0
    assert by_name["evaluate"].flops > 0 and by_name["import_transcoders@0"].io
    assert result["text"]["files"] >= 1 and not result["text"]["training_reaches_heldout"]
    assert "GPU fp32" in out and "this CPU" in out


def test_check_times_real_trainer_steps_on_a_tiny_profile(capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    result = main(
        ["tiny", "--check", "--check-steps", "1", "--check-batch", "256", "--repeats", "1",
         "--matmul-rows", "16", "--buffer-rows", "1024"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "FLOP counts checked against the CPU smoke run" in out
    check = result["check"]
    assert check["smoke batch"]["measured_s"] > 0 and check["smoke batch"]["ratio"] > 0
    assert check["larger batch"]["batch"] == 256 and "fit" in check
