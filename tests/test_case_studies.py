"""Case studies: the machinery on the tiny organism, and the template through the stage
entry point (the gpt2_small configs run end to end in test_gpt2_small_profile.py)."""

import copy
import json
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

import transcoder_lab.case_studies as case_studies
from transcoder_lab.case_studies.common import (
    Prompt,
    auroc,
    context_positions,
    corpus_prompts,
    labelled_heldout,
    select_feature,
)
from transcoder_lab.case_studies.feature import (
    StudyRoot,
    blind_hypothesis,
    probe_vocabulary,
    saved_step,
    swap_earlier,
)
from transcoder_lab.config import CONF_DIR, REPO_ROOT, load_config
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.paths import GRAPH_FOLDER, corpus_dir
from transcoder_lab.sources.models import load_model


def test_auroc_matches_the_pairwise_definition_with_ties():
    generator = torch.Generator().manual_seed(0)
    positive = torch.randint(0, 4, (3, 7), generator=generator).float()  # many ties on purpose
    negative = torch.randint(0, 4, (3, 11), generator=generator).float()
    pairs = positive[:, :, None] - negative[:, None, :]
    expected = ((pairs > 0).double() + 0.5 * (pairs == 0).double()).mean(dim=(1, 2))
    assert torch.allclose(auroc(positive, negative).double(), expected, atol=1e-6)
    assert auroc(torch.ones(1, 2), torch.zeros(1, 3)).item() == 1.0
    with pytest.raises(ValueError, match="at least one"):
        auroc(torch.ones(1, 0), torch.zeros(1, 3))


def test_corpus_prompts_end_on_the_requested_label(tiny_pipeline):
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    heldout = labelled_heldout(cfg, model.tokenizer.bos_token_id)
    prompts = corpus_prompts(heldout, ["citation/semicolon"], n=5)
    names = json.loads((corpus_dir(cfg) / "labels.json").read_text())  # what the corpus stage wrote
    assert list(heldout.names) == names
    semicolon = names.index("citation/semicolon")
    assert prompts and all(int(p.labels[-1]) == semicolon for p in prompts)
    assert all(int(p.tokens[0]) == model.tokenizer.bos_token_id for p in prompts)
    assert all(model.tokenizer.decode([int(p.tokens[-1])]) == ";" for p in prompts)
    with pytest.raises(ValueError, match="unknown ground-truth labels"):
        corpus_prompts(heldout, ["citation/semi"], n=5)


def test_selected_feature_is_the_most_selective_one(tiny_pipeline):
    """The selection's reported AUROCs are recomputed here from scratch for the chosen feature and
    no other feature of that layer beats its min(vs rest, vs contrast) score."""
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    transcoders = case_studies.circuit_transcoders(cfg)
    heldout = labelled_heldout(cfg, model.tokenizer.bos_token_id)
    chosen = select_feature(model, transcoders, heldout, ["citation/semicolon"], ["prose/semicolon"], [1])
    labels = heldout.labels.reshape(-1)
    acts = case_studies.common.feature_activations(model, transcoders[1], heldout.contexts)
    acts = acts.reshape(-1, acts.shape[-1]).T
    names = json.loads((corpus_dir(cfg) / "labels.json").read_text())
    target = labels == names.index("citation/semicolon")
    prose = labels == names.index("prose/semicolon")
    rest = ~target & (labels != 255)
    vs_contrast = auroc(acts[:, target], acts[:, prose])
    vs_rest = auroc(acts[:, target], acts[:, rest])
    assert chosen.layer == 1
    assert chosen.auroc_vs_contrast == pytest.approx(float(vs_contrast[chosen.feature]), abs=1e-6)
    assert chosen.auroc_vs_rest == pytest.approx(float(vs_rest[chosen.feature]), abs=1e-6)
    assert float(torch.minimum(vs_rest, vs_contrast).max()) == pytest.approx(
        min(chosen.auroc_vs_rest, chosen.auroc_vs_contrast), abs=1e-6
    )


def test_context_positions_skip_bos_and_the_last_token():
    # labels: BOS, 3, 5, 3, 7, 3 (the last token, which the root reads, is never its own context)
    prompt = Prompt(torch.arange(6), torch.tensor([-1, 3, 5, 3, 7, 3]))
    assert context_positions(prompt, torch.tensor([3])) == [1, 3]
    assert context_positions(prompt, torch.tensor([3, 7])) == [1, 3, 4]
    assert context_positions(prompt, torch.tensor([9])) == []


def test_feature_pre_activation_is_one_column_of_all_of_them():
    from transcoder_lab.case_studies.common import feature_pre_activation

    spec = DictionarySpec(kind="transcoder", layer=0, d_in=16, d_sae=40, d_out=16)
    generator = torch.Generator().manual_seed(0)
    transcoder = Dictionary.initialise(spec, generator)
    with torch.no_grad():  # non-zero biases, so both bias terms are checked
        transcoder.b_dec.copy_(torch.randn(16, generator=generator))
        transcoder.b_enc.copy_(torch.randn(40, generator=generator))
    x = torch.randn(3, 5, 16, generator=generator)
    one = feature_pre_activation(transcoder, 7, x)
    assert one.shape == (3, 5)
    # the same 16-term float32 dot products summed in another order: a few ulps of values of order 1
    assert torch.allclose(one, transcoder.pre_activations(x)[..., 7], rtol=0, atol=1e-5)


def test_token_probe_is_the_feature_on_each_synthetic_prompt(tiny_pipeline):
    """`_token_probe` (batched rows, one feature computed) against a separate forward pass of
    [BOS, t, suffix] and every feature's pre-activation, for a few tokens t."""
    from transcoder_lab.case_studies.feature import _token_probe
    from transcoder_lab.sources.hooks import mlp_in_hook

    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    transcoder, feature, suffix = case_studies.circuit_transcoders(cfg)[1], 5, 7
    probe = _token_probe(model, transcoder, feature, [], [suffix])
    assert probe.shape == (len(model.tokenizer),)
    hook = mlp_in_hook(1)
    for token in (1, 100, len(model.tokenizer) - 1):
        tokens = torch.tensor([[model.tokenizer.bos_token_id, token, suffix]])
        _, cache = model.run_with_cache(tokens, names_filter=hook)
        expected = transcoder.pre_activations(cache[hook][0, -1])[feature]
        # float32: one row of a batched forward vs a batch of one, d_model-term dot products
        assert float(probe[token]) == pytest.approx(float(expected), abs=1e-5)
    # on a sample of the vocabulary, entry i is the sample's i-th token's, the same value
    sample = torch.tensor([1, 100, len(model.tokenizer) - 1])
    assert torch.allclose(
        _token_probe(model, transcoder, feature, [], [suffix], sample), probe[sample], atol=1e-5
    )


def test_probe_vocabulary_is_everything_or_a_fixed_sample():
    assert torch.equal(probe_vocabulary(50, None), torch.arange(50))
    assert torch.equal(probe_vocabulary(50, 80), torch.arange(50))
    sample = probe_vocabulary(50_257, 2048)
    assert len(sample) == len(set(sample.tolist())) == 2048 and bool((sample.diff() > 0).all())
    assert 0 <= int(sample.min()) and int(sample.max()) < 50_257
    assert torch.equal(sample, probe_vocabulary(50_257, 2048))  # the same sample on every call
    assert sample.max() > 40_000  # drawn from the whole vocabulary, not its first ids
    with pytest.raises(ValueError, match="at least"):
        probe_vocabulary(50_257, 3)


def test_blind_hypothesis_on_a_sample_names_only_sampled_tokens(tiny_pipeline):
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    transcoder = case_studies.circuit_transcoders(cfg)[1]
    n_vocab = len(model.tokenizer)
    hypothesis = blind_hypothesis(model, transcoder, 5, probe_tokens=n_vocab // 4)
    sample = set(probe_vocabulary(n_vocab, n_vocab // 4).tolist())
    assert hypothesis["probed_tokens"] == n_vocab // 4
    assert set(hypothesis["current_token_ids"]) <= sample
    assert blind_hypothesis(model, transcoder, 5)["probed_tokens"] == n_vocab


def test_saved_step_reads_the_stage_result_of_the_same_root_only(tiny_pipeline, tmp_path, capsys):
    cfg, _ = tiny_pipeline
    cfg = copy.deepcopy(cfg)
    cfg.paths.results = str(tmp_path / "results")
    root = StudyRoot(layer=2, feature=7)
    assert saved_step(cfg, "citation", root, "blind.hypothesis") is None  # no stage result yet
    path = tmp_path / "results" / "tiny" / "case_studies" / "citation.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"root": {"layer": 2, "feature": 7, "label": "tc2[7]"}, "blind": {"hypothesis": 1}})
    )
    assert saved_step(cfg, "citation", root, "blind.hypothesis") == 1
    assert "read from results/tiny/case_studies/citation.json" in capsys.readouterr().out
    assert saved_step(cfg, "citation", root, "blind.other") is None
    assert saved_step(cfg, "citation", StudyRoot(layer=2, feature=8), "blind.hypothesis") is None


def test_swap_earlier_replaces_only_tokens_before_the_last():
    prompt = Prompt(torch.tensor([0, 5, 7, 5, 5]), None)
    swapped = swap_earlier(prompt, old=5, new=9)
    assert swapped is not None and swapped.tokens.tolist() == [0, 9, 7, 9, 5]
    assert swap_earlier(Prompt(torch.tensor([0, 7, 5]), None), old=5, new=9) is None


@pytest.mark.parametrize("name", ["greater_than", "citation", "caught", "walkthrough", "local_context"])
def test_every_case_study_runs_on_the_tiny_organism(tiny_pipeline, name):
    cfg, root = tiny_pipeline
    result = case_studies.run_case_study(cfg, name)
    saved = json.loads((root / "results" / "tiny" / "case_studies" / f"{name}.json").read_text())
    assert saved["name"] == name and saved["profile"] == "tiny"
    assert saved["figures"] and all(
        (root / "figures" / "tiny" / "case_studies" / name / p.split("/")[-1]).exists()
        for p in saved["figures"]
    )
    for key, check in saved["expected"].items():  # every expectation was looked up and judged
        assert check["verdict"] in ("ok", "BELOW", "ABOVE", "OUTSIDE"), key
    # the graph in circuit-tracer's front-end format (circuits/circuit_tracer/test_frontend.py checks it)
    graphs = root / "figures" / "tiny" / "case_studies" / name / GRAPH_FOLDER
    slugs = [g["slug"] for g in json.loads((graphs / "graph-metadata.json").read_text())["graphs"]]
    assert sorted(slugs) == [name, f"{name}_full"]  # the beam-search graph and the pruned full graph
    graph = json.loads((graphs / f"{name}.json").read_text())
    assert [node["feature_type"] for node in graph["nodes"]].count("logit") == 1 and graph["links"]
    for node in graph["nodes"]:
        if node["feature_type"] == "cross layer transcoder":
            feature = json.loads((graphs / "features" / "tiny" / f"{node['feature']}.json").read_text())
            assert feature["top_logits"] and feature["bottom_logits"]
            # labelled from the organism's ground truth: "tc<l>[<i>] <label> <F1>", top held-out contexts
            assert len(node["clerp"].split()) >= 2 and feature["act_max"] > 0
            (group,) = feature["examples_quantiles"]
            assert group["examples"] and node["clerp"].split(" ", 1)[1] in group["quantile_name"]
    # the full graph of the same prompt (tests/circuits/test_full_graph.py checks the numbers)
    full = saved["full_graph"]
    assert full["n_tokens"] == len(graph["metadata"]["prompt_tokens"])
    assert full["n_tokens"] < full["n_nodes_kept"] <= full["n_nodes"]  # embeddings always kept
    assert 0 < full["replacement_score"] <= 1 and 0 < full["completeness_score"] <= 1
    full_file = json.loads((graphs / f"{name}_full.json").read_text())
    assert full_file["metadata"]["prompt_tokens"] == graph["metadata"]["prompt_tokens"]
    assert {node["feature_type"] for node in full_file["nodes"]} >= {"embedding", "logit"}
    assert all(n["clerp"] for n in full_file["nodes"] if n["feature_type"] == "cross layer transcoder")
    # faithfulness by intervention, frozen and live, on the graph prompt and over the prompts
    faithfulness = saved["faithfulness"]
    bars = cfg.case_study[name].faithfulness
    main = faithfulness["graph_prompt"]
    assert len(main["nodes"]) == main["n_active_features"] > main["n_circuit_features"] > 0
    assert sum(row["in_circuit"] for row in main["nodes"]) == main["n_circuit_features"]
    for mode in ("frozen", "live"):
        assert all(f"actual_change_{mode}" in row for row in main["nodes"])
        for measure in ("sufficiency", "necessity"):
            assert main[mode][f"random_{measure}"]["n_sets"] == bars.n_random_sets
        assert faithfulness["over_prompts"][mode]["sufficiency"]["n"] >= 1
    assert {v["verdict"] for v in faithfulness["verdicts"].values()} <= {"ok", "BELOW"}
    if name in ("citation", "caught", "walkthrough", "local_context"):  # planted context known
        assert saved["ground_truth"]["verdict"] in ("ok", "BELOW")
        assert saved["ground_truth"]["n_prompts"] >= 1
        # the same prompts as matched pairs against the neutral token (case_studies.contrastive)
        assert saved["contrastive"]["n_pairs"] == saved["ground_truth"]["n_prompts"]
        assert saved["contrastive"]["verdict"] in ("ok", "BELOW")
    if name == "greater_than":
        curves = saved["curves"]
        assert len(curves["features"]) == len(curves["neurons"]) == len(curves["n"])
        assert saved["layer"] in (0, 1)
        n_draws = cfg.case_study["greater_than"].profiles["organism"].n_prompt_resamples
        samples = saved["prompt_resamples"]["samples"]
        assert n_draws > 0 and len({s["prompt_seed"] for s in samples}) == len(samples) == n_draws
    else:
        assert saved["root"]["label"].startswith("tc") and "circuit" in saved
        assert result["circuit"]["graph"]["nodes"]
    if name in ("citation", "local_context"):  # blind: hypothesis recorded, then judged
        assert saved["blind"]["hypothesis"]["statement"] and isinstance(
            saved["blind"]["confirmed_by_dashboard"], bool
        )


def test_greater_than_curves_reach_the_full_values_with_every_component(tiny_pipeline):
    """n = every feature reproduces the spliced transcoder; n = every neuron the original model."""
    cfg = copy.deepcopy(tiny_pipeline[0])  # the session fixture's config stays as it is
    d_sae = cfg.profile.dictionaries.expansion_factor * cfg.profile.model.d_model
    settings = cfg.case_study["greater_than"].profiles["organism"]
    settings.n_components = 10 * d_sae
    settings.n_prompt_resamples = 0  # fresh prompt draws repeat the curves; their end points are not at stake
    result = case_studies.run_case_study(cfg, "greater_than", write=False)
    curves, pd = result["curves"], result["probability_difference"]
    assert curves["n"][-1] == max(d_sae, cfg.profile.model.d_mlp)
    # float32 forward passes of identical computations up to summation order: 1e-5 is generous
    assert curves["features"][-1] == pytest.approx(pd["transcoder_spliced"], abs=1e-5)
    assert curves["neurons"][-1] == pytest.approx(pd["original"], abs=1e-5)
    other = result["other_protocol"]
    assert {curves["protocol"], other["curves"]["protocol"]} == {"zero", "mean"}
    assert other["curves"]["neurons"][-1] == pytest.approx(pd["original"], abs=1e-5)
    assert other["curves"]["features"][-1] == pytest.approx(
        other["probability_difference"]["transcoder_spliced"], abs=1e-5
    )
    # every neuron mean-ablated at the last token is the MLP's last-token output mean-ablated
    # (W_out is linear), so the mean protocol's neuron curve starts at that probability difference
    mean = curves if curves["protocol"] == "mean" else other["curves"]
    mean_pd = pd if curves["protocol"] == "mean" else other["probability_difference"]
    assert mean["neurons"][0] == pytest.approx(mean_pd["mlp_last_token_mean_ablated"], abs=1e-5)


def test_greater_than_curves_are_read_from_the_stage_result_only_where_it_matches(tiny_pipeline, tmp_path):
    """The notebook's shortcut: the saved curves are used for the same prompts, model, transcoder and
    component count, and recomputed otherwise. A saved result with shifted curves shows which."""
    from transcoder_lab.case_studies import greater_than as gt
    from transcoder_lab.sources.tokens import two_digit_token_ids

    cfg = copy.deepcopy(tiny_pipeline[0])
    cfg.paths.results, cfg.paths.figures = str(tmp_path / "results"), str(tmp_path / "figures")
    settings = cfg.case_study["greater_than"].profiles["organism"]
    settings.n_components, settings.n_prompt_resamples = 6, 0
    case_studies.run_case_study(cfg, "greater_than")  # writes the stage's result under tmp_path
    model = load_model(cfg.profile, cfg.paths.models)
    transcoders = case_studies.circuit_transcoders(cfg)
    texts, yy = gt.prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)
    original = gt.prompt_scores(model, texts, yy, ids)
    choice = gt.choose_layers(model, texts, yy, ids, original, transcoders, settings)
    saved = gt.saved_result(cfg, original)
    assert saved is not None
    fresh = gt.protocol_analyses(model, texts, yy, ids, original, transcoders, choice, settings)
    headline = choice.headline

    shifted = copy.deepcopy(saved)
    shifted["curves"]["features"] = [value + 1.0 for value in saved["curves"]["features"]]
    reused = gt.protocol_analyses(model, texts, yy, ids, original, transcoders, choice, settings, shifted)
    assert reused[headline]["curves"]["features"] == shifted["curves"]["features"]

    shifted["probability_difference"]["transcoder_spliced"] += 0.5  # another transcoder's result
    recomputed = gt.protocol_analyses(model, texts, yy, ids, original, transcoders, choice, settings, shifted)
    assert recomputed[headline]["curves"]["features"] == fresh[headline]["curves"]["features"]
    assert gt.saved_result(cfg, {**original, "probability_difference": 0.0}) is None  # other prompts


def test_greater_than_prompt_draws_differ_in_wording_not_in_years(tiny_pipeline):
    from transcoder_lab.case_studies.greater_than import RESAMPLE_SEED, prompts_for

    cfg, _ = tiny_pipeline
    (main_texts, main_yy), (draw_texts, draw_yy) = prompts_for(cfg), prompts_for(cfg, RESAMPLE_SEED)
    assert torch.equal(main_yy, torch.arange(100)) and torch.equal(draw_yy, main_yy)
    assert sum(a != b for a, b in zip(main_texts, draw_texts, strict=True)) > 50


@pytest.mark.parametrize(
    "features, neurons, holds",
    [
        ([0.1, 0.5, 0.95], [0.1, 0.2, 0.3, 0.5, 0.95], True),  # 2 features vs 4 neurons
        ([0.1, 0.5, 0.95], [0.1, 0.2, 0.95], False),  # 2 vs 2
        ([0.1, 0.95], [0.1, 0.2, 0.3], True),  # neurons never reach the mark
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], False),  # features never reach it
        ([0.95, 0.95], [0.1, 0.2, 0.3, 0.95], False),  # void: ablating every feature stays above it
    ],
)
def test_features_need_at_most_half(features, neurons, holds):
    from transcoder_lab.case_studies.greater_than import features_need_at_most_half

    assert features_need_at_most_half(features, neurons, mark=0.9) is holds


def test_unknown_case_study_names_the_configured_ones(tiny_pipeline):
    cfg, _ = tiny_pipeline
    with pytest.raises(KeyError, match="greater_than"):
        case_studies.run_case_study(cfg, "no_such_study")


def test_template_copied_under_a_new_name_runs_through_the_stage(tiny_pipeline, tmp_path):
    """What the README's "Add a case study" asks: copy the template, list it, compose, run the stage."""
    _, root = tiny_pipeline
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    shutil.copy(conf / "case_study" / "template.yaml", conf / "case_study" / "my_study.yaml")
    defaults = (conf / "config.yaml").read_text()
    (conf / "config.yaml").write_text(
        defaults.replace("  - _self_", "  - case_study@case_study.my_study: my_study\n  - _self_")
    )
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        raw = hydra_compose(config_name="config", overrides=["profile=tiny"])
    params = OmegaConf.to_container(raw, resolve=True)
    params["paths"] = {key: str(root / key) for key in params["paths"]}
    assert "my_study" in load_config(params).case_study
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "experiments" / "case_study.py"), "my_study"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    saved = json.loads((root / "results" / "tiny" / "case_studies" / "my_study.json").read_text())
    assert saved["name"] == "my_study" and saved["root"]["label"].startswith("tc")
    assert (root / "figures" / "tiny" / "case_studies" / "my_study" / "graph.png").stat().st_size > 5_000
    missing = subprocess.run(
        [sys.executable, str(REPO_ROOT / "experiments" / "case_study.py"), "not_listed"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "Add a case study" in missing.stderr


def test_full_graph_above_the_feature_limit_is_skipped_with_the_fix(tiny_pipeline):
    cfg, _ = tiny_pipeline
    cfg.case_study["citation"].full_graph_max_features = 0
    try:
        result = case_studies.run_case_study(cfg, "citation", write=False)
    finally:
        cfg.case_study["citation"].full_graph_max_features = 16384
    assert result["full_graph"]["n_active_features"] > 0
    assert "case_study.citation.full_graph_max_features" in result["full_graph"]["skipped"]


def test_report_lists_every_case_study_beside_its_expectations(tiny_pipeline):
    cfg, root = tiny_pipeline
    from transcoder_lab.stage import load_stage

    for name in ("greater_than", "citation"):
        case_studies.run_case_study(cfg, name)
    load_stage("evaluate").run(cfg)
    text = load_stage("report").run(cfg)
    assert (root / "results" / "tiny" / "REPORT.md").read_text() == text
    assert "## Behaviour" in text and "## Dictionaries" in text and "## All transcoders spliced" in text
    assert "### Greater-than (`greater_than`)" in text and "### Citation semicolons (`citation`)" in text
    assert "`selection.auroc_vs_contrast` | >= 0.95" in text  # the expectation beside the measurement
    assert "(../../figures/tiny/case_studies/greater_than/curves.png)" in text
    assert "### Full attribution graphs" in text and "| `citation` |" in text.split("### Full attribution")[1]
    matched = text.split("Matched pairs (case_studies.contrastive)")[1]
    assert "| `citation` |" in matched.split("###")[0]
