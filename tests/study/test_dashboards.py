"""Feature dashboards on a small random model: activations, examples, effects and the HTML card."""

import re

import pytest
import torch

from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.sources.models import build_processed_model
from transcoder_lab.standins.gpt2 import gpt2_shaped_config
from transcoder_lab.study import dashboards as dash

D_VOCAB = 100
LAYER = 1
FEATURES = [3, 17, 40]


@pytest.fixture(scope="module")
def model():
    cfg = gpt2_shaped_config(n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=D_VOCAB, n_ctx=16)
    return build_processed_model(cfg)


@pytest.fixture(scope="module")
def contexts():
    return torch.randint(0, D_VOCAB, (24, 16), generator=torch.Generator().manual_seed(1))


def make_dictionary(kind, architecture="relu", k=None):
    spec = DictionarySpec(kind=kind, layer=LAYER, d_in=32, d_sae=64, d_out=32, architecture=architecture, k=k)
    dictionary = Dictionary.initialise(spec, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # a small positive bias so every feature fires sometimes
        dictionary.b_enc.fill_(0.05)
    return dictionary


@pytest.fixture(scope="module")
def transcoder():
    return make_dictionary("transcoder")


@pytest.fixture(scope="module")
def boards(model, transcoder, contexts):
    return dash.build_dashboards(
        model, transcoder, contexts, FEATURES, n_examples=4, window=3, exclude_token_ids=()
    )


def letters(token: int) -> str:
    """A digit-free token text, so the blind card's text can be checked for numbers."""
    return "".join(chr(ord("a") + int(c)) for c in str(token))


@pytest.mark.parametrize(
    "kind,architecture,k",
    [("transcoder", "relu", None), ("sae_mlp_in", "relu", None), ("sae_mlp_out", "topk", 5)],
)
def test_feature_activations_match_encode(model, contexts, kind, architecture, k):
    dictionary = make_dictionary(kind, architecture, k)
    acts = dash.feature_activations(model, dictionary, contexts, FEATURES, batch_size=5)
    _, cache = model.run_with_cache(contexts)
    expected = dictionary.encode(cache[dictionary.spec.hook_in])[..., FEATURES]
    assert acts.shape == (24, 16, len(FEATURES))
    torch.testing.assert_close(acts, expected.detach(), rtol=1e-5, atol=1e-5)


def test_statistics_and_top_example(boards, model, transcoder, contexts):
    acts = dash.feature_activations(model, transcoder, contexts, FEATURES)
    for column, board in enumerate(boards):
        feature_acts = acts[..., column]
        assert board.feature == FEATURES[column] and board.layer == LAYER and board.kind == "transcoder"
        assert board.max_activation == pytest.approx(float(feature_acts.max()))
        assert board.frequency == pytest.approx(float((feature_acts > 0).float().mean()))
        top = board.bands[0]
        assert top.name == "top"
        best = top.examples[0]
        assert best.activation == pytest.approx(board.max_activation)
        assert feature_acts[best.context_index, best.position] == pytest.approx(board.max_activation)
        assert (
            best.tokens == contexts[best.context_index, best.start : best.start + len(best.tokens)].tolist()
        )
        assert len(best.tokens) <= 7


def test_bands_are_ordered(boards):
    for board in boards:
        top, *quantile = board.bands
        top_values = [e.activation for e in top.examples]
        assert top_values == sorted(top_values, reverse=True)
        assert len({e.context_index for e in top.examples}) == len(top.examples)
        assert len(quantile) == 4
        for higher, lower in zip(quantile, quantile[1:], strict=False):
            assert higher.lower >= lower.upper - 1e-7 and higher.quantiles[0] == lower.quantiles[1]
        assert all(band.examples for band in quantile)
        for band in quantile:
            assert band.lower <= band.upper
            for example in band.examples:
                assert band.lower <= example.activation <= band.upper and example.activation > 0
                assert example.context_index not in {e.context_index for e in top.examples}


def test_logit_effects_and_de_embedding(boards, model, transcoder):
    for board in boards:
        effects = transcoder.W_dec[board.feature].detach() @ model.W_U.detach()
        top = effects.topk(10)
        assert [t for t, _ in board.logit_effects_top] == top.indices.tolist()
        torch.testing.assert_close(torch.tensor([v for _, v in board.logit_effects_top]), top.values)
        bottom = effects.topk(10, largest=False)
        assert [t for t, _ in board.logit_effects_bottom] == bottom.indices.tolist()
        de_emb = model.W_E.detach() @ transcoder.W_enc[:, board.feature].detach()
        # Same ranking as the raw W_E @ W_enc (W_E is centred by processing; the scale is one constant).
        assert [t for t, _ in board.de_embedding_top] == de_emb.topk(10).indices.tolist()


def test_sae_mlp_in_has_no_logit_effects(model, contexts):
    board = dash.build_dashboards(model, make_dictionary("sae_mlp_in"), contexts, [5], n_examples=2)[0]
    assert board.logit_effects_top is None and board.de_embedding_top is not None
    assert any("logit" in note for note in board.notes)
    out = dash.build_dashboards(model, make_dictionary("sae_mlp_out"), contexts, [5], n_examples=2)[0]
    assert out.logit_effects_top is not None and out.de_embedding_top is None


def test_excluded_tokens_are_not_counted(model, transcoder, contexts):
    contexts = contexts.clone()
    contexts[:, 0] = 0  # a BOS-like token
    board = dash.build_dashboards(model, transcoder, contexts, [3], exclude_token_ids=[0])[0]
    assert board.n_tokens == int((contexts != 0).sum())
    for band in board.bands:
        assert all(contexts[e.context_index, e.position] != 0 for e in band.examples)


def test_html_escapes_tokens(boards):
    nasty = "<script>alert(\"x\")</script> & 'q'"
    page = dash.dashboard_html(boards[0], lambda token: nasty)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp;" in page
    assert "&quot;" in page or "\\'" in page


def test_blind_html_hides_every_number(boards):
    for board in boards:
        seen = dash.dashboard_html(board, letters, show_values=True)
        blind = dash.dashboard_html(board, letters, show_values=False)
        values = {dash._fmt(v) for band in board.bands for e in band.examples for v in e.activations}
        values |= {dash._fmt(board.max_activation), f"{board.frequency:.4%}", f"Feature {board.feature}"}
        values |= {f"{v:+.3f}" for _, v in board.logit_effects_top + board.de_embedding_top}
        assert all(value in seen for value in values)
        assert not any(value in blind for value in values)
        assert "title=" not in blind and "layer" not in blind and "transcoder" not in blind
        text = re.sub(r"<[^>]*>", "", re.sub(r"<style>.*?</style>", "", blind, flags=re.S))
        assert not re.search(r"\d", text), text
        # The colours remain: the centre of the top example is at the feature's max colour.
        assert f'class="tl-tok {dash._LEVEL_CLASSES[-1]} tl-centre"' in blind


def test_write_page_and_show(tmp_path, boards):
    path = dash.write_dashboards_html(tmp_path / "cards.html", boards, letters, show_values=False)
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<div class="tl-card">') == len(boards)
    shown = dash.show(boards[0], letters)
    assert "tl-card" in (shown if isinstance(shown, str) else shown.data)


def test_organism_tokenizer_renders(boards):
    from transcoder_lab.organism.tokenizer import train_tokenizer

    texts = ["In 1732 the war ended & <b>peace</b> came.", 'The "treaty" lasted from 1815 to 1848.'] * 20
    tokenizer = train_tokenizer(texts, vocab_size=400)
    page = dash.dashboard_html(boards[0], tokenizer)
    assert "tl-card" in page and "<b>" not in page
