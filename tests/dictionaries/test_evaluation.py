"""Reconstruction and splice metrics on hand-built dictionaries, and the sae-lens cross-check."""

import pytest
import torch
from sae_lens import SAE, HookedSAETransformer

from transcoder_lab.dictionaries import Dictionary, DictionarySpec, save_dictionary
from transcoder_lab.dictionaries.crosslayer import CrossLayerSpec, CrossLayerTranscoder
from transcoder_lab.dictionaries.evaluation import reconstruction_metrics, splice_metrics, spliced, token_hash
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.sources.models import build_processed_model
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

D = 16
IN, OUT = mlp_in_hook(0), mlp_out_hook(0)


def identity_dictionary(kind: str, layer: int = 0, d: int = D) -> Dictionary:
    """Features +e_i and -e_i: y_hat = relu(x) - relu(-x) = x exactly, with L0 = nonzero coords."""
    spec = DictionarySpec(kind=kind, layer=layer, d_in=d, d_sae=2 * d, d_out=d)
    dictionary = Dictionary(spec)
    eye = torch.eye(d)
    with torch.no_grad():
        dictionary.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        dictionary.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    return dictionary


@pytest.fixture(scope="module")
def model():
    config = gpt2_shaped_config(seed=0, n_layers=2, d_model=D, d_head=4, n_heads=4, d_mlp=64, d_vocab=50)
    return build_processed_model(config)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 50, (12, 10), generator=torch.Generator().manual_seed(0))


def test_reconstruction_of_a_perfect_dictionary():
    g = torch.Generator().manual_seed(0)
    batches = [{IN: (x := torch.randn(16, D, generator=g)), OUT: x} for _ in range(3)]
    metrics = reconstruction_metrics(identity_dictionary("transcoder"), batches)
    assert metrics["fvu"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["l0"] == pytest.approx(D)  # every coordinate of a Gaussian is nonzero: one feature each
    assert metrics["dead_fraction"] == 0.0 and metrics["n_rows"] == 48


@pytest.mark.parametrize("kind", ["sae_mlp_out", "sae_mlp_in"])
def test_perfect_dictionary_recovers_all_the_loss(model, tokens, kind):
    [result] = splice_metrics(model, {"perfect": [identity_dictionary(kind, layer=1)]}, tokens).values()
    assert result["ce_spliced"] == pytest.approx(result["ce_clean"], abs=1e-5)
    assert result["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert result["kl"] == pytest.approx(0.0, abs=1e-5)
    assert result["dictionaries"][0]["fvu"] == pytest.approx(0.0, abs=1e-10)
    assert result["dictionaries"][0]["l0"] == pytest.approx(D)


def test_zero_dictionary_equals_zero_ablation(model, tokens):
    spec = DictionarySpec(kind="transcoder", layer=1, d_in=D, d_sae=8, d_out=D)
    [result] = splice_metrics(model, {"zero": [Dictionary(spec)]}, tokens).values()
    assert result["ce_spliced"] == pytest.approx(result["ce_zero_ablation"], abs=1e-6)
    assert result["loss_recovered"] == pytest.approx(0.0, abs=1e-5)
    assert result["dictionaries"][0]["l0"] == 0.0 and result["dictionaries"][0]["dead_fraction"] == 1.0


def test_l0_without_bos_excludes_bos_positions(model):
    tokens = torch.tensor([[0, 5, 6, 7]] * 2)
    identity = {"id": [identity_dictionary("sae_mlp_out", layer=0)]}
    [result] = splice_metrics(model, identity, tokens, bos_id=0).values()
    _, cache = model.run_with_cache(tokens)
    nonzero = (cache[mlp_out_hook(0)] != 0).sum(-1).double()  # [batch, pos]
    stats = result["dictionaries"][0]
    assert stats["l0"] == pytest.approx(nonzero.mean().item())
    assert stats["l0_without_bos"] == pytest.approx(nonzero[:, 1:].mean().item())


def test_keep_error_leaves_the_forward_pass_unchanged(model, tokens):
    spec = DictionarySpec(kind="transcoder", layer=0, d_in=D, d_sae=8, d_out=D)
    dictionary = Dictionary.initialise(spec, generator=torch.Generator().manual_seed(1))
    clean = model(tokens)
    with spliced(model, [dictionary], keep_error=True):
        kept = model(tokens)
    torch.testing.assert_close(kept, clean, atol=1e-5, rtol=1e-5)


def test_two_dictionaries_on_one_hook_are_refused(model, tokens):
    pair = [identity_dictionary("sae_mlp_out", 1), identity_dictionary("sae_mlp_out", 1)]
    with pytest.raises(ValueError, match="same activation"), spliced(model, pair):
        model(tokens)


@pytest.mark.parametrize("kind", ["transcoder", "sae_mlp_out"])
def test_splice_cross_entropy_matches_sae_lens(model, tokens, kind, tmp_path):
    """The same saved dictionary spliced by sae-lens's HookedSAETransformer and by our code."""
    spec = DictionarySpec(kind=kind, layer=1, d_in=D, d_sae=32, d_out=D)
    dictionary = Dictionary.initialise(spec, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        dictionary.b_dec.normal_(0, 0.3)  # a pre-bias, so the transcoder's folding is exercised
        dictionary.b_enc.normal_(0, 0.1)
    save_dictionary(dictionary, tmp_path / kind)
    [ours] = splice_metrics(model, {"one": [dictionary]}, tokens).values()

    reference = HookedSAETransformer(model.cfg)
    reference.load_state_dict(model.state_dict(), strict=False)
    sae = SAE.load_from_disk(str(tmp_path / kind))
    with torch.no_grad():
        theirs = reference.run_with_saes(tokens, saes=[sae], return_type="loss").item()
    # Both are float32 means of ~100 log-probs of size ~4: rounding differences are ~1e-6.
    assert ours["ce_spliced"] == pytest.approx(theirs, abs=1e-4)
    assert abs(ours["ce_spliced"] - ours["ce_clean"]) > 1e-3  # the splice really changed the loss


def test_token_hash_identifies_the_held_out_set(tokens):
    assert token_hash(tokens) == token_hash(tokens.clone())
    changed = tokens.clone()
    changed[0, 0] += 1
    assert token_hash(changed) != token_hash(tokens)


def test_feature_edit_with_error_term_changes_the_output_by_the_decoded_difference(model, tokens):
    spec = DictionarySpec(kind="transcoder", layer=0, d_in=D, d_sae=8, d_out=D)
    dictionary = Dictionary.initialise(spec, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        dictionary.b_enc.fill_(0.5)  # every feature active somewhere
    _, clean = model.run_with_cache(tokens, names_filter=[IN, OUT])
    z = dictionary.encode(clean[IN])

    def drop_feature_3(_, activations):
        edited = activations.clone()
        edited[..., 3] = 0
        return edited

    with spliced(model, [dictionary], keep_error=True, edit_features=drop_feature_3):
        _, edited = model.run_with_cache(tokens, names_filter=[OUT])
    expected = clean[OUT] - z[..., 3:4] * dictionary.W_dec[3]
    assert z[..., 3].abs().max() > 0
    torch.testing.assert_close(edited[OUT], expected.detach(), atol=1e-5, rtol=1e-5)


def test_per_context_losses_average_to_the_totals_and_change_nothing_else(model, tokens):
    spec = DictionarySpec(kind="transcoder", layer=1, d_in=D, d_sae=8, d_out=D)
    sets = {"one": [Dictionary.initialise(spec, generator=torch.Generator().manual_seed(4))]}
    plain = splice_metrics(model, sets, tokens, batch_size=2)["one"]
    with_contexts = splice_metrics(model, sets, tokens, batch_size=2, per_context=True)["one"]
    spliced, clean = with_contexts.pop("ce_spliced_per_context"), with_contexts.pop("ce_clean_per_context")
    assert with_contexts == plain  # the same sums: asking for contexts moves no other number
    assert spliced.shape == clean.shape == (len(tokens),) and spliced.dtype == torch.float64
    # every context predicts the same number of tokens, so the mean of the contexts' means is the
    # overall mean (up to float32 summation in the totals)
    assert spliced.mean().item() == pytest.approx(plain["ce_spliced"], rel=1e-6)
    assert clean.mean().item() == pytest.approx(plain["ce_clean"], rel=1e-6)
    assert spliced.std() > 0  # contexts differ: a per-context value, not the total repeated


# -- a cross-layer transcoder spliced into every layer ---------------------------------------------


def random_crosslayer(recipe: str = "l1_decoder_norm", d_sae: int = 24) -> CrossLayerTranscoder:
    """A 2-layer CLT on the model's shapes with random weights and biases (a third of its features
    fire on a typical row)."""
    clt_spec = CrossLayerSpec(n_layers=2, d_in=D, d_out=D, d_sae=d_sae, recipe=recipe)
    generator = torch.Generator().manual_seed(3)
    clt = CrossLayerTranscoder.initialise(clt_spec, generator)
    with torch.no_grad():
        for name, parameter in clt.named_parameters():
            scale = 0.3 if name.startswith("b_") else 0.5
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return clt


def per_layer_transcoders(clt: CrossLayerTranscoder) -> list[Dictionary]:
    """The per-layer transcoders with the CLT's weights: its encoders, its same-layer decoders."""
    out = []
    for layer in range(clt.spec.n_layers):
        transcoder = Dictionary(DictionarySpec("transcoder", layer, D, clt.spec.d_sae, D))
        with torch.no_grad():
            for name in ("W_enc", "b_enc", "b_dec", "b_dec_out"):
                getattr(transcoder, name).copy_(getattr(clt, name)[layer])
            transcoder.W_dec.copy_(clt.W_dec[layer][:, 0])
        out.append(transcoder)
    return out


def test_a_crosslayer_transcoder_without_cross_decoders_splices_as_its_per_layer_transcoders(model, tokens):
    """Zero decoders l -> l' > l: splicing the CLT into every layer gives the spliced CE, KL and
    per-layer reconstruction metrics of the per-layer transcoders with its weights spliced together."""
    clt = random_crosslayer()
    with torch.no_grad():
        clt.W_dec[0][:, 1:] = 0.0
    results = splice_metrics(model, {"clt": [clt], "per_layer": per_layer_transcoders(clt)}, tokens)
    crosslayer, per_layer = results["clt"], results["per_layer"]
    assert crosslayer["layers"] == per_layer["layers"] == [0, 1]
    assert crosslayer["ce_spliced"] > crosslayer["ce_clean"] + 0.01  # the splice changes the model
    for key in ("ce_spliced", "ce_zero_ablation", "kl", "loss_recovered"):
        assert crosslayer[key] == pytest.approx(per_layer[key], rel=1e-6, abs=1e-7), key
    assert len(crosslayer["dictionaries"]) == 2  # one entry per layer, as one per transcoder
    for ours, theirs in zip(crosslayer["dictionaries"], per_layer["dictionaries"], strict=True):
        assert 0 < ours["l0"] < clt.spec.d_sae
        for key in ("fvu", "l0", "dead_fraction"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5), key


@pytest.mark.parametrize("recipe", ["l1_decoder_norm", "tanh_jumprelu"])
def test_a_spliced_crosslayer_transcoder_writes_each_mlp_output_from_earlier_features(model, tokens, recipe):
    """With its cross decoders, layer 1's MLP output is decoded from both layers' features (the
    stacked forward pass on the activations the spliced model sees), and keep_error changes nothing."""
    clt = random_crosslayer(recipe)
    seen: dict[str, torch.Tensor] = {}

    def record(activation, hook):
        seen[hook.name] = activation.detach().clone()

    hooks = [(hook, record) for hook in (*clt.spec.hooks_in, *clt.spec.hooks_out)]
    with spliced(model, [clt]), model.hooks(fwd_hooks=hooks):  # recorded after the splice's hooks
        model(tokens)
    x = torch.stack([seen[hook] for hook in clt.spec.hooks_in])
    with torch.no_grad():
        y_hat, z = clt(x.reshape(2, -1, D))
    for layer, hook in enumerate(clt.spec.hooks_out):
        torch.testing.assert_close(seen[hook].reshape(-1, D), y_hat[layer], rtol=1e-5, atol=1e-5)
    assert (z[0] > 0).any() and clt.W_dec[0][:, 1].abs().sum() > 0  # layer 0's features reach layer 1
    with torch.no_grad():
        clean = model(tokens)
        with spliced(model, [clt], keep_error=True):
            kept = model(tokens)
    torch.testing.assert_close(kept, clean, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="same activation"):
        with spliced(model, [clt, identity_dictionary("sae_mlp_out", layer=1)]):
            pass


def test_a_crosslayer_feature_edit_reaches_every_later_mlp_output_by_its_decoders(model, tokens):
    """Dropping layer-0 feature f of a CLT with keep_error: layer 0's MLP output changes by
    -z_f W_dec[0 -> 0][f] and layer 1's by -z_f W_dec[0 -> 1][f], plus what the real MLP 1 does with
    the edited stream (held at the clean one here); layer 1's own features cancel, since the error
    kept is that of the same run's unedited reconstruction."""
    clt = random_crosslayer()
    _, clean = model.run_with_cache(tokens, names_filter=[*clt.spec.hooks_in, *clt.spec.hooks_out])
    z0 = clt.encode_layer(clean[clt.spec.hooks_in[0]], 0)
    feature = int(z0.flatten(0, -2).gt(0).sum(0).argmax())  # the most often active layer-0 feature

    def drop(layer: int, z: torch.Tensor) -> torch.Tensor:
        if layer != 0:
            return z
        edited = z.clone()
        edited[..., feature] = 0
        return edited

    frozen_in = [(clt.spec.hooks_in[1], lambda activation, hook: clean[hook.name])]
    with spliced(model, [clt], keep_error=True, edit_features=drop), model.hooks(fwd_hooks=frozen_in):
        _, edited = model.run_with_cache(tokens, names_filter=list(clt.spec.hooks_out))
    for layer, hook in enumerate(clt.spec.hooks_out):
        expected = clean[hook] - z0[..., feature : feature + 1] * clt.W_dec[0][feature, layer]
        torch.testing.assert_close(edited[hook], expected.detach(), atol=1e-5, rtol=1e-5)
    assert z0[..., feature].abs().max() > 0 and clt.W_dec[0][feature, 1].abs().sum() > 0
