"""A pretrained profile's text through the real reading code: parquet files of a dataset repo in a
local Hugging Face cache (the stand-in's layout), read offline, with an unreachable hub, or missing."""

import huggingface_hub.constants as hub_constants
import pytest
import torch

from transcoder_lab.config import TextSourceConfig, load_profile
from transcoder_lab.organism.tokenizer import train_tokenizer
from transcoder_lab.sources.text_source import (
    TextSourceUnavailableError,
    fetch,
    heldout_contexts,
    source_files,
    text_documents,
)
from transcoder_lab.standins.gpt2 import (
    STANDIN_TEXT_FILE,
    standin_documents,
    standin_text_file,
    write_text_source,
)

N_DOCUMENTS = 120
SOURCE = TextSourceConfig()  # the paper profile's OpenWebText source


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    write_text_source(
        home, SOURCE.repo, SOURCE.revision, STANDIN_TEXT_FILE, N_DOCUMENTS, seed=3, row_group_size=40
    )
    return home


def use_cache(monkeypatch, hf_home, offline: bool) -> None:
    """Point huggingface_hub at the stand-in cache; `offline` is HF_HUB_OFFLINE. Without it the hub
    is an address nothing listens on, so the network path runs and finds the hub unreachable."""
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")


def test_documents_are_read_in_order_after_a_skip(monkeypatch, hf_home):
    use_cache(monkeypatch, hf_home, offline=True)
    expected = standin_documents(N_DOCUMENTS, seed=3)
    assert source_files(SOURCE) == [STANDIN_TEXT_FILE]
    assert list(text_documents(SOURCE)) == expected
    # row groups of 40: skipping 100 passes over two whole groups and 20 rows of the third
    assert list(text_documents(SOURCE, skip=100)) == expected[100:]
    assert list(text_documents(SOURCE, skip=80)) == expected[80:]
    assert list(text_documents(SOURCE, skip=N_DOCUMENTS)) == []


def test_an_unreachable_hub_reads_the_cache_and_stays_offline(monkeypatch, hf_home):
    use_cache(monkeypatch, hf_home, offline=False)
    assert list(text_documents(SOURCE, skip=110)) == standin_documents(N_DOCUMENTS, seed=3)[110:]
    assert hub_constants.HF_HUB_OFFLINE  # later requests of this process skip the network retries


@pytest.mark.parametrize("offline", [True, False])
def test_a_source_missing_from_the_cache_names_the_fix(monkeypatch, hf_home, offline):
    use_cache(monkeypatch, hf_home, offline=offline)
    missing = TextSourceConfig(repo="someone/absent-dataset")
    with pytest.raises(TextSourceUnavailableError) as error:
        next(text_documents(missing))
    message = str(error.value)
    assert "someone/absent-dataset" in message
    assert "none of its files is in the local cache" in message
    assert ("HF_HUB_OFFLINE is set" if offline else "the hub is unreachable") in message
    assert "dvc exp run -S profile=organism" in message and "profile.text.repo" in message


def test_a_wrong_text_column_is_named(monkeypatch, hf_home):
    use_cache(monkeypatch, hf_home, offline=True)
    with pytest.raises(TextSourceUnavailableError, match="no column 'content'"):
        next(text_documents(TextSourceConfig(text_field="content")))


def test_heldout_contexts_of_a_pretrained_profile(monkeypatch, hf_home, tmp_path):
    use_cache(monkeypatch, hf_home, offline=True)
    documents = standin_documents(N_DOCUMENTS, seed=3)
    tokenizer = train_tokenizer(documents[:40], vocab_size=400)
    cfg = load_profile("gpt2_small", tmp_path, ["profile.text.heldout_skip_documents=100"])
    contexts = heldout_contexts(cfg, tokenizer, n_contexts=6, context_size=16)
    assert contexts.shape == (6, 16) and contexts.dtype == torch.long
    assert (contexts[:, 0] == tokenizer.bos_token_id).all()
    # the first context: its BOS, the document's own BOS, then the 101st document's first 14 tokens
    first = tokenizer(documents[100], add_special_tokens=False)["input_ids"]
    assert contexts[0].tolist() == [tokenizer.bos_token_id] * 2 + first[:14]
    with pytest.raises(ValueError, match="lower profile.text.heldout_skip_documents"):
        heldout_contexts(cfg, tokenizer, n_contexts=100_000, context_size=16)


def test_fetch_names_the_files_that_hold_the_documents(monkeypatch, hf_home):
    use_cache(monkeypatch, hf_home, offline=True)
    assert fetch(SOURCE, N_DOCUMENTS) == [STANDIN_TEXT_FILE]
    with pytest.raises(TextSourceUnavailableError, match=f"hold {N_DOCUMENTS} documents, fewer than"):
        fetch(SOURCE, N_DOCUMENTS + 1)


@pytest.mark.parametrize("profile", ["gpt2_small", "pythia_410m", "pythia_1_4b"])
def test_the_standin_file_is_one_the_profiles_files_glob_matches(profile):
    text = load_profile(profile).profile.text
    assert text is not None and standin_text_file(text.files) == STANDIN_TEXT_FILE
    with pytest.raises(ValueError, match="does not match profile.text.files"):
        standin_text_file("plain_text/*validation/*.parquet")
