"""Dictionaries: the math on hand-built weights, training helpers, and the sae-lens on-disk format."""

import json

import pytest
import torch
from sae_lens import SAE

from transcoder_lab.dictionaries.dictionary import (
    CFG_FILENAME,
    SPARSITY_FILENAME,
    WEIGHTS_FILENAME,
    Dictionary,
    DictionaryKind,
    DictionarySpec,
    load_dictionary,
    load_dictionary_metadata,
    load_dictionary_spec,
    load_log10_frequency,
    save_dictionary,
)
from transcoder_lab.io import write_safetensors

D_IN, D_SAE = 6, 24

SPECS = {
    "transcoder": DictionarySpec("transcoder", 3, D_IN, D_SAE, D_IN, model_name="organism"),
    "skip_transcoder": DictionarySpec("transcoder", 3, D_IN, D_SAE, D_IN, skip=True, model_name="organism"),
    "sae_mlp_out": DictionarySpec("sae_mlp_out", 3, D_IN, D_SAE, D_IN, model_name="organism"),
    "sae_mlp_in": DictionarySpec("sae_mlp_in", 3, D_IN, D_SAE, D_IN, model_name="organism"),
    "topk_sae": DictionarySpec("sae_mlp_out", 3, D_IN, D_SAE, D_IN, "topk", k=4, model_name="organism"),
}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def random_dictionary(spec: DictionarySpec, seed: int = 0) -> Dictionary:
    """Random weights everywhere, biases included, so the pre-bias folding is exercised."""
    generator = torch.Generator().manual_seed(seed)
    dictionary = Dictionary.initialise(spec, generator=generator)
    with torch.no_grad():
        for parameter in dictionary.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    return dictionary


def test_spec_hooks_and_validation():
    transcoder = DictionarySpec("transcoder", 8, 768, 24576, 768)
    assert transcoder.kind is DictionaryKind.transcoder
    assert transcoder.hook_in == "blocks.8.ln2.hook_normalized"
    assert transcoder.hook_out == "blocks.8.hook_mlp_out"
    sae_out = DictionarySpec("sae_mlp_out", 8, 768, 24576, 768)
    assert sae_out.hook_in == sae_out.hook_out == "blocks.8.hook_mlp_out"
    sae_in = DictionarySpec("sae_mlp_in", 8, 768, 24576, 768)
    assert sae_in.hook_in == sae_in.hook_out == "blocks.8.ln2.hook_normalized"
    with pytest.raises(ValueError, match="unknown dictionary kind"):
        DictionarySpec("crosscoder", 0, 4, 8, 4)
    with pytest.raises(ValueError, match="k"):
        DictionarySpec("sae_mlp_out", 0, 4, 8, 4, "topk")
    with pytest.raises(ValueError, match="transcoders only"):
        DictionarySpec("sae_mlp_out", 0, 4, 8, 4, skip=True)


def test_encode_decode_match_the_formulas_on_hand_built_weights():
    spec = DictionarySpec("transcoder", 0, d_in=2, d_sae=3, d_out=2)
    dictionary = Dictionary(spec)
    with torch.no_grad():
        dictionary.W_enc.copy_(torch.tensor([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]]))
        dictionary.b_enc.copy_(torch.tensor([0.1, 0.2, -0.3]))
        dictionary.b_dec.copy_(torch.tensor([1.0, -1.0]))
        dictionary.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        dictionary.b_dec_out.copy_(torch.tensor([10.0, 20.0]))
    x = torch.tensor([[2.0, 0.0]])
    # x - b_dec = [1, 1]; pre = [1 + 2, -1 + 0, 0.5 - 1] + b_enc = [3.1, -0.8, -0.8]
    assert torch.allclose(dictionary.pre_activations(x), torch.tensor([[3.1, -0.8, -0.8]]))
    z = dictionary.encode(x)
    assert torch.allclose(z, torch.tensor([[3.1, 0.0, 0.0]]))
    y_hat, z_forward = dictionary(x)
    assert torch.allclose(y_hat, torch.tensor([[13.1, 20.0]]))
    assert torch.equal(z, z_forward)
    # The effective (folded) bias gives the same pre-activations without the pre-bias.
    folded = x @ dictionary.W_enc + dictionary.effective_encoder_bias()
    assert torch.allclose(folded, dictionary.pre_activations(x))


def test_skip_transcoder_adds_x_w_skip_and_needs_x():
    spec = DictionarySpec("transcoder", 0, 3, 5, 2, skip=True)
    dictionary = random_dictionary(spec)
    x = torch.randn(4, 3)
    z = dictionary.encode(x)
    expected = z @ dictionary.W_dec + dictionary.b_dec_out + x @ dictionary.W_skip
    assert torch.allclose(dictionary(x)[0], expected)
    with pytest.raises(ValueError, match="skip"):
        dictionary.decode(z)


def test_sae_ties_pre_bias_and_output_bias_as_one_parameter():
    dictionary = random_dictionary(SPECS["sae_mlp_out"])
    assert dictionary.b_dec_out is dictionary.b_dec
    names = [name for name, _ in dictionary.named_parameters()]
    assert names == ["W_enc", "b_enc", "W_dec", "b_dec"]
    assert "b_dec_out" not in dictionary.state_dict()
    y = torch.randn(5, D_IN)
    expected = torch.relu((y - dictionary.b_dec) @ dictionary.W_enc + dictionary.b_enc) @ dictionary.W_dec
    assert torch.allclose(dictionary(y)[0], expected + dictionary.b_dec)
    transcoder = random_dictionary(SPECS["transcoder"])
    assert transcoder.b_dec_out is not transcoder.b_dec


def test_topk_keeps_exactly_k_largest():
    dictionary = random_dictionary(SPECS["topk_sae"])
    with torch.no_grad():
        dictionary.b_enc.fill_(50.0)  # all pre-activations positive, so exactly k survive
    x = torch.randn(50, D_IN)
    pre = dictionary.pre_activations(x)
    z = dictionary.encode(x)
    assert ((z > 0).sum(-1) == 4).all()
    kept = pre.topk(4, dim=-1).indices
    assert torch.equal(z.gather(-1, kept), pre.gather(-1, kept))


def test_initialise_is_deterministic_with_unit_decoder_rows():
    first = Dictionary.initialise(SPECS["transcoder"], generator=torch.Generator().manual_seed(3))
    second = Dictionary.initialise(SPECS["transcoder"], generator=torch.Generator().manual_seed(3))
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.allclose(first.W_dec.norm(dim=-1), torch.ones(D_SAE))
    assert torch.count_nonzero(first.b_enc) == 0 and torch.count_nonzero(first.b_dec_out) == 0


def test_normalize_decoder_gives_unit_rows():
    dictionary = random_dictionary(SPECS["transcoder"])
    with torch.no_grad():
        dictionary.W_dec.mul_(torch.rand(D_SAE, 1) * 10)
    dictionary.normalize_decoder_()
    assert torch.allclose(dictionary.W_dec.norm(dim=-1), torch.ones(D_SAE), atol=1e-6)


def test_parallel_gradient_removal_leaves_row_gradients_orthogonal():
    dictionary = random_dictionary(SPECS["transcoder"])
    dictionary.normalize_decoder_()
    x, y = torch.randn(32, D_IN), torch.randn(32, D_IN)
    y_hat, _ = dictionary(x)
    ((y_hat - y) ** 2).sum().backward()
    grad_before = dictionary.W_dec.grad.clone()
    dictionary.remove_parallel_decoder_grad_()
    grad = dictionary.W_dec.grad
    dots = (grad * dictionary.W_dec).sum(-1)
    assert dots.abs().max() < 1e-5 * grad_before.norm()
    # Only the parallel part was removed: the orthogonal part is unchanged.
    parallel = (grad_before * dictionary.W_dec).sum(-1, keepdim=True) * dictionary.W_dec
    assert (grad - (grad_before - parallel)).abs().max() < 1e-5 * grad_before.abs().max()


@pytest.mark.parametrize("name", ["transcoder", "skip_transcoder", "sae_mlp_out", "sae_mlp_in", "topk_sae"])
def test_sae_lens_loads_what_we_save_with_identical_outputs(tmp_path, name):
    spec = SPECS[name]
    dictionary = random_dictionary(spec)
    frequency = torch.linspace(-10, -1, D_SAE)
    save_dictionary(dictionary, tmp_path / name, frequency, {"l1_coefficient": 1.4e-4})

    cfg = json.loads((tmp_path / name / CFG_FILENAME).read_text())
    assert cfg["metadata"]["hook_name"] == spec.hook_in
    assert cfg["apply_b_dec_to_input"] is (not spec.is_transcoder)
    if spec.is_transcoder:
        assert cfg["metadata"]["hook_name_out"] == spec.hook_out and cfg["d_out"] == spec.d_out

    sae = SAE.load_from_disk(tmp_path / name)
    assert sae.cfg.architecture() == spec.sae_lens_architecture
    x = torch.randn(64, D_IN) + dictionary.b_dec.detach()  # around the pre-bias, so features fire
    with torch.no_grad():
        y_hat, z = dictionary(x)
        z_lens = sae.encode(x)
        y_lens = sae(x)
        assert (z > 0).any()
        assert torch.allclose(z_lens, z, atol=1e-5)
        assert torch.allclose(y_lens, y_hat, atol=1e-5)
        if not spec.skip:  # sae-lens's decode leaves the skip term to forward
            assert torch.allclose(sae.decode(z), y_hat, atol=1e-5)

    assert torch.equal(load_log10_frequency(tmp_path / name), frequency)
    assert load_dictionary_metadata(tmp_path / name) == {"l1_coefficient": 1.4e-4}
    assert load_dictionary_spec(tmp_path / name) == spec


@pytest.mark.parametrize("name", list(SPECS))
def test_our_loader_round_trips(tmp_path, name):
    spec = SPECS[name]
    dictionary = random_dictionary(spec)
    save_dictionary(dictionary, tmp_path / "a")
    loaded = load_dictionary(tmp_path / "a")
    assert loaded.spec == spec
    x = torch.randn(64, D_IN) + dictionary.b_dec.detach()
    with torch.no_grad():
        for original, reloaded in zip(dictionary(x), loaded(x), strict=True):
            assert torch.allclose(original, reloaded, atol=1e-5)
    if spec.is_transcoder:
        # Folded on saving: zero pre-bias, folded encoder bias, everything else exact.
        assert torch.count_nonzero(loaded.b_dec) == 0
        assert torch.equal(loaded.b_enc, dictionary.effective_encoder_bias())
        assert torch.equal(loaded.b_dec_out, dictionary.b_dec_out)
    else:
        assert loaded.b_dec_out is loaded.b_dec
    for parameter_name in ("W_enc", "W_dec") + (("b_enc", "b_dec") if not spec.is_transcoder else ()):
        assert torch.equal(getattr(loaded, parameter_name), getattr(dictionary, parameter_name))
    # A folded dictionary saves and loads back exactly.
    save_dictionary(loaded, tmp_path / "b")
    again = load_dictionary(tmp_path / "b")
    for (name_a, a), (name_b, b) in zip(loaded.state_dict().items(), again.state_dict().items(), strict=True):
        assert name_a == name_b and torch.equal(a, b)


def test_topk_transcoder_is_saved_but_sae_lens_refuses_it(tmp_path):
    spec = DictionarySpec("transcoder", 1, D_IN, D_SAE, D_IN, "topk", k=3)
    dictionary = random_dictionary(spec)
    save_dictionary(dictionary, tmp_path / "tk")
    with pytest.raises(KeyError, match="topk_transcoder"):
        SAE.load_from_disk(tmp_path / "tk")
    loaded = load_dictionary(tmp_path / "tk")
    x = torch.randn(16, D_IN)
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], dictionary(x)[0], atol=1e-5)


def test_clear_errors_for_missing_files_and_bad_shapes(tmp_path):
    dictionary = random_dictionary(SPECS["transcoder"])
    save_dictionary(dictionary, tmp_path / "d")
    with pytest.raises(FileNotFoundError, match=SPARSITY_FILENAME):
        load_log10_frequency(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match=CFG_FILENAME):
        load_dictionary(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="log10_frequency"):
        save_dictionary(dictionary, tmp_path / "e", torch.zeros(D_SAE + 1))

    weights = {"W_enc": torch.zeros(D_IN, D_SAE + 1), "b_enc": torch.zeros(D_SAE)}
    weights |= {"W_dec": torch.zeros(D_SAE, D_IN), "b_dec": torch.zeros(D_IN)}
    write_safetensors(tmp_path / "d" / WEIGHTS_FILENAME, weights)
    with pytest.raises(ValueError, match="'W_enc'"):
        load_dictionary(tmp_path / "d")
    (tmp_path / "d" / WEIGHTS_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILENAME):
        load_dictionary(tmp_path / "d")


def test_saving_without_frequency_removes_a_stale_sparsity_file(tmp_path):
    dictionary = random_dictionary(SPECS["sae_mlp_in"])
    save_dictionary(dictionary, tmp_path, torch.zeros(D_SAE))
    assert (tmp_path / SPARSITY_FILENAME).exists()
    save_dictionary(dictionary, tmp_path)
    assert not (tmp_path / SPARSITY_FILENAME).exists()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]
