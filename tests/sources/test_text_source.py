"""A pretrained profile's text through the real reading code: parquet files of a dataset repo in a
local Hugging Face cache (the stand-in's layout), read offline, with an unreachable hub, or missing.

huggingface_hub reads its cache, offline mode and endpoint from the environment when it is imported,
so each case runs in a fresh process with a user's environment (`helpers.hub_support`): nothing of
huggingface_hub is patched."""

import json
import subprocess
import sys
import textwrap

import pytest

from transcoder_lab.config import TextSourceConfig, load_profile
from transcoder_lab.standins.gpt2 import (
    STANDIN_TEXT_FILE,
    standin_documents,
    standin_text_file,
    write_text_source,
)

from helpers.hub_support import client_environment

N_DOCUMENTS = 120
SOURCE = TextSourceConfig()  # the paper profile's OpenWebText source
DEAD_HUB = "http://127.0.0.1:9"  # an address nothing listens on: the network path finds no hub
PRELUDE = """
import json
import huggingface_hub.constants as hub_constants
from transcoder_lab.config import TextSourceConfig, load_profile
from transcoder_lab.sources.text_source import (
    TextSourceUnavailableError, fetch, heldout_contexts, source_files, text_documents)
SOURCE = TextSourceConfig()

def message(call):
    try:
        call()
    except (TextSourceUnavailableError, ValueError) as error:
        return str(error)
    return None
"""


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    write_text_source(
        home, SOURCE.repo, SOURCE.revision, STANDIN_TEXT_FILE, N_DOCUMENTS, seed=3, row_group_size=40
    )
    return home


def in_client(hf_home, offline: bool, code: str):
    """Run `code` (it sets `result`) in a fresh process reading the stand-in cache, with
    HF_HUB_OFFLINE=1 when `offline`, else with the hub at DEAD_HUB; returns `result`."""
    env = client_environment(hf_home, DEAD_HUB, **({"HF_HUB_OFFLINE": "1"} if offline else {}))
    script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=env["HOME"]
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_documents_are_read_in_order_after_a_skip(hf_home):
    result = in_client(
        hf_home,
        True,
        f"""
        result = {{"files": source_files(SOURCE), "all": list(text_documents(SOURCE)),
                   "after": {{n: list(text_documents(SOURCE, skip=n)) for n in (100, 80, {N_DOCUMENTS})}}}}
    """,
    )
    expected = standin_documents(N_DOCUMENTS, seed=3)
    assert result["files"] == [STANDIN_TEXT_FILE]
    assert result["all"] == expected
    # row groups of 40: skipping 100 passes over two whole groups and 20 rows of the third
    assert result["after"]["100"] == expected[100:] and result["after"]["80"] == expected[80:]
    assert result["after"][str(N_DOCUMENTS)] == []


def test_an_unreachable_hub_reads_the_cache_and_stays_offline(hf_home):
    result = in_client(
        hf_home,
        False,
        """
        offline_before = bool(hub_constants.HF_HUB_OFFLINE)
        result = {"documents": list(text_documents(SOURCE, skip=110)), "before": offline_before,
                  "after": bool(hub_constants.HF_HUB_OFFLINE)}
    """,
    )
    assert result["documents"] == standin_documents(N_DOCUMENTS, seed=3)[110:]
    # later requests of this process skip the network retries; the user had not set offline mode
    assert result["before"] is False and result["after"] is True


@pytest.mark.parametrize("offline", [True, False])
def test_a_source_missing_from_the_cache_names_the_fix(hf_home, offline):
    message = in_client(
        hf_home,
        offline,
        """
        missing = TextSourceConfig(repo="someone/absent-dataset")
        result = message(lambda: next(text_documents(missing)))
    """,
    )
    assert message is not None and "someone/absent-dataset" in message
    assert "none of its files is in the local cache" in message
    assert ("HF_HUB_OFFLINE is set" if offline else "the hub is unreachable") in message
    assert "dvc exp run -S profile=organism" in message and "profile.text.repo" in message


def test_a_wrong_text_column_is_named(hf_home):
    message = in_client(
        hf_home,
        True,
        """
        result = message(lambda: next(text_documents(TextSourceConfig(text_field="content"))))
    """,
    )
    assert message is not None and "no column 'content'" in message


def test_heldout_contexts_of_a_pretrained_profile(hf_home, tmp_path):
    result = in_client(
        hf_home,
        True,
        f"""
        from transcoder_lab.organism.tokenizer import train_tokenizer
        from transcoder_lab.standins.gpt2 import standin_documents
        documents = standin_documents({N_DOCUMENTS}, seed=3)
        tokenizer = train_tokenizer(documents[:40], vocab_size=400)
        cfg = load_profile("gpt2_small", {str(tmp_path)!r}, ["profile.text.heldout_skip_documents=100"])
        contexts = heldout_contexts(cfg, tokenizer, n_contexts=6, context_size=16)
        result = {{"contexts": contexts.tolist(), "dtype": str(contexts.dtype), "bos": tokenizer.bos_token_id,
                   "first": tokenizer(documents[100], add_special_tokens=False)["input_ids"],
                   "too_many": message(lambda: heldout_contexts(cfg, tokenizer, 100_000, 16))}}
    """,
    )
    contexts, bos = result["contexts"], result["bos"]
    assert len(contexts) == 6 and all(len(row) == 16 for row in contexts) and result["dtype"] == "torch.int64"
    assert all(row[0] == bos for row in contexts)
    # the first context: its BOS, the document's own BOS, then the 101st document's first 14 tokens
    assert contexts[0] == [bos] * 2 + result["first"][:14]
    assert "lower profile.text.heldout_skip_documents" in result["too_many"]


def test_fetch_names_the_files_that_hold_the_documents(hf_home):
    result = in_client(
        hf_home,
        True,
        f"""
        result = {{"files": fetch(SOURCE, {N_DOCUMENTS}),
                   "short": message(lambda: fetch(SOURCE, {N_DOCUMENTS + 1}))}}
    """,
    )
    assert result["files"] == [STANDIN_TEXT_FILE]
    assert f"hold {N_DOCUMENTS} documents, fewer than" in result["short"]


@pytest.mark.parametrize("profile", ["gpt2_small", "pythia_410m", "pythia_1_4b"])
def test_the_standin_file_is_one_the_profiles_files_glob_matches(profile):
    text = load_profile(profile).profile.text
    assert text is not None and standin_text_file(text.files) == STANDIN_TEXT_FILE
    with pytest.raises(ValueError, match="does not match profile.text.files"):
        standin_text_file("plain_text/*validation/*.parquet")
