"""The case studies' verdicts (case_studies.faithfulness, year_features, feature.dashboard_check):
each comes out ok on a case that meets its bar and BELOW on one built to fail it."""

import torch

from transcoder_lab.case_studies import faithfulness as cf
from transcoder_lab.case_studies.common import LabelledTokens, circuit_transcoders, settings_for
from transcoder_lab.case_studies.feature import choose_root, dashboard_check, heldout_tokens, study_prompts
from transcoder_lab.case_studies.greater_than import prompts_for
from transcoder_lab.case_studies.year_features import YearProfile, binomial_tail, planted_task_check
from transcoder_lab.circuits import AttributionContext
from transcoder_lab.circuits.faithfulness import total_effects
from transcoder_lab.config import FaithfulnessConfig, SearchConfig
from transcoder_lab.dictionaries import load_dictionary
from transcoder_lab.paths import dictionary_dir
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.tokens import two_digit_token_ids


def _measures(value: float, percentile: float) -> dict:
    random = {"percentile_of_circuit": percentile}
    return {"sufficiency": value, "necessity": value, "spearman": value,
            "random_sufficiency": random, "random_necessity": random}  # fmt: skip


def _over(value: float, percentile: float) -> dict:
    def summary(x):
        return {"n": 5, "median": x, "q25": x, "q75": x}

    return {
        "sufficiency": summary(value), "necessity": summary(value),
        "sufficiency_percentile": summary(percentile), "necessity_percentile": summary(percentile),
    }  # fmt: skip


def test_verdicts_need_both_the_bar_and_the_random_percentile():
    bars = FaithfulnessConfig()
    good = cf.faithfulness_verdicts({"live": _measures(0.9, 100.0)}, {"live": _over(0.9, 100.0)}, bars)
    assert {v["verdict"] for v in good.values()} == {"ok"}
    # high share, but no better than random sets of the same size: BELOW
    lucky = cf.faithfulness_verdicts({"live": _measures(0.9, 60.0)}, {"live": _over(0.9, 60.0)}, bars)
    assert all(lucky[k]["verdict"] == "BELOW" for k in ("sufficiency", "necessity", "median_sufficiency"))
    # beats random, but under the bar: BELOW
    weak = cf.faithfulness_verdicts({"live": _measures(0.3, 100.0)}, {"live": _over(0.3, 100.0)}, bars)
    assert {v["verdict"] for v in weak.values()} == {"BELOW"}
    # undefined (a root the features do not move): BELOW, never ok by default
    undefined = cf.faithfulness_verdicts({"live": _measures(None, None)}, {"live": _over(None, None)}, bars)
    assert {v["verdict"] for v in undefined.values()} == {"BELOW"}


def test_a_circuit_of_the_least_effective_features_is_judged_below(tiny_pipeline):
    """On the tiny organism's greater-than prompt: the study's own beam-search circuit against
    one of the same size made of the active features with the smallest total effect."""
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    l1 = cfg.profile.dictionaries.l1_coefficients[0]
    tcs = {layer: load_dictionary(dictionary_dir(cfg, layer, "transcoder", l1)) for layer in (0, 1)}
    texts, yy = prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)
    make_root = cf.logit_diff_at_end(ids[75], ids[15])
    tokens = model.to_tokens(texts[int((yy == 45).nonzero()[0]) if (yy == 45).any() else 0])[0]
    bars = FaithfulnessConfig(n_prompts=2, n_per_node_prompts=1)
    root, circuit = cf.study_circuit(model, tcs, tokens, make_root, SearchConfig())
    ctx = AttributionContext.from_tokens(model, tcs, tokens)
    candidates = [
        (layer, int(p), int(f))
        for layer, z in sorted(ctx.feature_acts.items())
        for p, f in (z > 0).nonzero().tolist()
        if 1 <= p <= root.position
    ]
    effects = total_effects(ctx, root, candidates).abs()
    weakest = [candidates[i] for i in (-effects).topk(len(circuit)).indices.tolist()]
    prompt_roots = [(tokens, make_root)]
    real = cf.study_faithfulness(model, tcs, tokens, (root, circuit), prompt_roots, SearchConfig(), bars)
    built_to_fail = cf.study_faithfulness(
        model, tcs, tokens, (root, weakest), prompt_roots, SearchConfig(), bars
    )
    for name in ("sufficiency", "necessity"):
        assert built_to_fail["verdicts"][name]["verdict"] == "BELOW"
        frozen = real["graph_prompt"]["frozen"][f"random_{name}"]["percentile_of_circuit"]
        assert frozen > built_to_fail["graph_prompt"]["frozen"][f"random_{name}"]["percentile_of_circuit"]


def _profile(feature: int, favours: bool, centre: float = 40.0) -> YearProfile:
    return YearProfile(feature, centre, torch.zeros(100), torch.zeros(100), favours)


def test_planted_task_check_is_a_binomial_test_a_coin_fails():
    assert binomial_tail(15, 20) == (15504 + 4845 + 1140 + 190 + 20 + 1) / 2**20  # C(20, 15..20)
    assert binomial_tail(0, 20) == 1.0
    task = planted_task_check([_profile(i, i < 16) for i in range(20)])
    assert task["n_counted"] == 20 and task["n_favouring_later_years"] == 16
    assert task["binomial_p"] < 0.05
    coin = planted_task_check([_profile(i, i % 2 == 0) for i in range(20)])  # 10 of 20: a coin
    assert coin["binomial_p"] > 0.5
    # a feature that never fires has no centre and is not counted
    silent = planted_task_check([_profile(0, False, float("nan")), _profile(1, True)])
    assert silent["n_counted"] == 1 and silent["share_favouring_later_years"] == 1.0


def test_the_hypothesis_is_confirmed_only_with_its_context_too():
    """Tokens: 5 = the current token the hypothesis names, 7 = the context it names. The feature
    fires on every 5; only in the first two rows is a 7 in front."""

    class Identity:  # decodes a token id as itself
        tokenizer = type("T", (), {"decode": staticmethod(lambda ids: str(ids[0]))})

    contexts = torch.tensor([[0, 7, 1, 5], [0, 7, 2, 5], [0, 3, 1, 5], [0, 2, 2, 5]] * 2)
    labels = torch.zeros_like(contexts)
    heldout = LabelledTokens(
        torch.stack([contexts[i // 2] for i in range(2 * len(contexts))]),
        torch.stack([labels[i // 2] for i in range(2 * len(labels))]),
        ("background",),
    )  # each context twice, so the report half (odd rows) holds all of them
    report = heldout.report_half()
    acts = (report.contexts == 5).float()
    hypothesis = {"current_token_ids": [5], "context_token_ids": [7]}
    half = dashboard_check(Identity(), None, 0, heldout, hypothesis, acts)
    assert half["share_of_top_tokens_named_by_hypothesis"] == 1.0
    assert half["share_of_top_tokens_after_named_context"] == 0.5
    assert half["confirmed"] is True  # half of them: the bar is "at least half"
    wrong_context = dashboard_check(
        Identity(), None, 0, heldout, hypothesis | {"context_token_ids": [9]}, acts
    )
    assert wrong_context["confirmed"] is False


def test_ground_truth_check_is_below_when_the_named_context_is_not_what_the_root_reads(tiny_pipeline):
    """The caught study's root on the tiny organism, checked against the most frequent label in its
    prompts' context other than the planted one: BELOW under the configured bars, and ok only when
    the bars are lowered past what was measured (the verdict follows the measurement)."""
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    settings = settings_for(cfg, cfg.case_study["caught"], "caught")
    transcoders = circuit_transcoders(cfg)
    heldout = heldout_tokens(cfg, model)
    root = choose_root(settings, model, transcoders, heldout)
    prompts = study_prompts(model, heldout, settings)[0][:10]
    counts = torch.bincount(torch.cat([p.labels[1:-1] for p in prompts]).clamp(min=0))
    counts[heldout.label_ids(settings.context_labels + settings.target_labels)] = 0
    other = heldout.name_of(int(counts.argmax()))
    neutral = model.to_single_token(settings.neutral_token)

    def check(bars: FaithfulnessConfig) -> dict:
        return cf.ground_truth_check(
            model, transcoders, root.layer, root.feature, prompts, heldout, [other], neutral, bars
        )

    bars = FaithfulnessConfig()
    wrong = check(bars)
    assert wrong["n_prompts"] > 0 and wrong["verdict"] == "BELOW", (other, wrong)
    share = wrong["attention_share_from_context"]["median"]
    loss = wrong["loss_without_attention_from_context"]["mean"]
    assert share < bars.min_context_share or loss < bars.min_context_loss
    lowered = FaithfulnessConfig(min_context_share=share - 1e-9, min_context_loss=loss - 1e-9)
    assert check(lowered)["verdict"] == "ok"
