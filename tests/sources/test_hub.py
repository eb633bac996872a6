"""What the lab says when a paper profile's download fails, from where the user stands
(transcoder_lab.sources.hub): offline mode set in the environment, a hub that does not answer, a file the hub
does not have. Each case runs the lab's three loaders (the model, the text source, a published
transcoder) in a fresh process with an empty cache and a user's environment, against nothing, a dead
address or a local stand-in hub, and checks the exact sentences: what each must say, and what it
must not (the user's offline setting is named only where their environment sets it)."""

import re
import socket

import pytest

from transcoder_lab.dictionaries.published import PUBLISHED_REPO, published_weights_filename
from transcoder_lab.sources.hub import offline_variable, proxy_settings
from transcoder_lab.standins.gpt2 import repo_folder
from transcoder_lab.standins.hub_server import HubServer

from helpers.hub_support import SOURCE, client_environment, run_loaders, write_small_origin

ALL = {"model": {}, "text": {}, "published": {"layer": 0}}
WEIGHTS_0 = published_weights_filename(0)
LEADS = {  # how each loader's message starts, before the finding
    "model": "could not load 'gpt2' from the Hugging Face hub or the local cache: ",
    "text": f"could not read the text source {SOURCE.repo}@{SOURCE.revision} (files '{SOURCE.files}'): ",
    "published": f"could not fetch {WEIGHTS_0} from the hub repo {PUBLISHED_REPO} or the local cache: ",
}
NOT_CACHED = {  # and what each adds after it
    "model": ", and its files (config.json, weights) are not in the cache. ",
    "text": ", and none of its files is in the local cache. ",
    "published": ". ",
}
WAY_BACK = "to run the offline organism profile instead: `dvc exp run -S profile=organism`"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def failures(outcome: dict) -> dict[str, str]:
    assert not any(result["ok"] for result in outcome.values()), outcome
    return {name: result["message"] for name, result in outcome.items()}


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_set_by_the_user_is_named_with_its_fix(tmp_path, variable):
    """The user's own setting, named as they set it, and how to lift it; no word of an unreachable hub
    (no request is made: the endpoint is a port nothing listens on)."""
    env = client_environment(tmp_path / "hf_home", f"http://127.0.0.1:{closed_port()}", **{variable: "1"})
    calls = ALL if variable == "HF_HUB_OFFLINE" else {"text": {}}  # the variable's name is the difference
    finding = f"{variable} is set in your environment ({variable}=1), so huggingface_hub downloads nothing"
    for name, message in failures(run_loaders(env, calls)).items():
        assert message.startswith(LEADS[name] + finding + NOT_CACHED[name]), (name, message)
        assert (
            "`unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE` and run once with hub access to fill the Hugging "
            in message
        )
        assert WAY_BACK in message
        for wrong in ("unreachable", "did not answer", "the hub has no", "proxy"):
            assert wrong not in message, (name, wrong)


def test_an_unreachable_hub_is_named_with_endpoint_proxies_and_timeout(tmp_path):
    """No offline setting (HF_HUB_OFFLINE=0 is set, and off), the endpoint refuses connections: each
    message names the endpoint, the timeout and that no proxy is set, says how to check and fix the
    route, and never mentions HF_HUB_OFFLINE (the lab switched offline mode on itself)."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = client_environment(tmp_path / "hf_home", endpoint, HF_HUB_OFFLINE="0")
    no_proxy = "none (HTTPS_PROXY, HTTP_PROXY and ALL_PROXY are unset, in upper and lower case)"
    finding = re.escape(
        f"the hub is unreachable: {endpoint} did not answer within 10 s on a direct connection ("
    ) + (r"ConnectError: [^)]*Connection refused\)" + re.escape(f"; proxy settings seen: {no_proxy}"))
    for name, message in failures(run_loaders(env, ALL)).items():
        assert re.match(re.escape(LEADS[name]) + finding + re.escape(NOT_CACHED[name]), message), (
            name,
            message,
        )
        assert (
            f"check that this machine reaches {endpoint} (`curl -I {endpoint}/`): behind an HTTP proxy, "
            in message
        )
        assert (
            "export HTTPS_PROXY and HTTP_PROXY" in message
            and "raise HF_HUB_ETAG_TIMEOUT (seconds; now 10)" in message
        )
        assert WAY_BACK in message
        for wrong in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "set in your environment", "the hub has no"):
            assert wrong not in message, (name, wrong)


def test_an_unreachable_proxy_is_named_without_its_password(tmp_path):
    """The hub behind an HTTPS proxy that refuses connections, with a shorter metadata timeout: the
    message names both proxy variables as set (password hidden) and that timeout; HF_HUB_OFFLINE
    is not set at all here, and not mentioned."""
    proxy = f"http://lab:secret@127.0.0.1:{closed_port()}"
    env = client_environment(
        tmp_path / "hf_home",
        "https://hub.invalid",
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        HF_HUB_ETAG_TIMEOUT="3",
    )
    shown = proxy.replace("secret", "***")
    for name, message in failures(run_loaders(env, {"text": {}, "published": {"layer": 0}})).items():
        lead = "the hub is unreachable: https://hub.invalid did not answer within 3 s "
        lead += f"through the proxy {shown} ("
        assert message.startswith(LEADS[name] + lead), message
        assert f"; proxy settings seen: HTTPS_PROXY={shown}, HTTP_PROXY={shown}{NOT_CACHED[name]}" in message
        assert "raise HF_HUB_ETAG_TIMEOUT (seconds; now 3)" in message
        assert "secret" not in message and "HF_HUB_OFFLINE" not in message


def test_what_the_hub_does_not_have_is_named_by_repo_revision_and_file(tmp_path):
    """A hub that answers, without the model repo, without the asked revision of the text source,
    and with only layer 0 of the transcoders: each message names repo, revision and file as asked."""
    origin = tmp_path / "origin"
    write_small_origin(origin, gpt2=False, transcoder_layers=range(1))
    weights_1 = published_weights_filename(1)
    with HubServer(origin / "hub") as server:
        env = client_environment(tmp_path / "hf_home", server.url)
        calls = {"model": {}, "text": {"revision": "refs/convert/other"}, "published": {"layer": 1}}
        messages = failures(run_loaders(env, calls))
    assert messages["model"].startswith(
        LEADS["model"]
        + "the hub has no model repo gpt2 (or it is private and no token with access to it was sent). "
    )
    assert messages["text"].startswith(
        f"could not read the text source {SOURCE.repo}@refs/convert/other (files '{SOURCE.files}'): "
        f"the hub has no revision refs/convert/other of the dataset repo {SOURCE.repo}, "
        "and none of its files is in the local cache. "
    )
    assert messages["published"].startswith(
        f"could not fetch {weights_1} from the hub repo {PUBLISHED_REPO} or the local cache: "
        f"the hub has no file {weights_1} in the model repo {PUBLISHED_REPO} at revision main. "
    )
    for name, message in messages.items():
        assert "check the repo, revision and file names against the hub" in message and WAY_BACK in message
        for wrong in ("HF_HUB_OFFLINE", "unreachable", "did not answer", "cache ($HF_HOME/hub) on a machine"):
            assert wrong not in message, (name, wrong)
    assert server.unhandled == []


def test_a_model_file_the_hub_lacks_is_named(tmp_path):
    """The model repo without its weights: transformers reports the files it looked for in a message
    of its own, and the lab names them as missing from the hub, not as an offline or network problem."""
    origin = tmp_path / "origin"
    write_small_origin(origin)
    model = repo_folder(origin, "gpt2")
    (model / "snapshots" / (model / "refs" / "main").read_text() / "model.safetensors").unlink()
    with HubServer(origin / "hub") as server:
        message = failures(run_loaders(client_environment(tmp_path / "hf_home", server.url), {"model": {}}))[
            "model"
        ]
    missing = (
        "the hub has no file pytorch_model.bin or model.safetensors in the model repo gpt2 at revision main. "
    )
    assert message.startswith(LEADS["model"] + missing), message
    assert "check the repo, revision and file names against the hub" in message
    for wrong in ("HF_HUB_OFFLINE", "unreachable", "OSError"):
        assert wrong not in message, wrong


def test_the_environment_is_read_as_huggingface_hub_reads_it():
    assert offline_variable({"HF_HUB_OFFLINE": "1"}) == ("HF_HUB_OFFLINE", "1")
    assert offline_variable({"HF_HUB_OFFLINE": "yes", "TRANSFORMERS_OFFLINE": "0"}) == (
        "HF_HUB_OFFLINE",
        "yes",
    )
    assert offline_variable({"TRANSFORMERS_OFFLINE": "True"}) == ("TRANSFORMERS_OFFLINE", "True")
    # a non-empty HF_HUB_OFFLINE decides, even when it is off
    assert offline_variable({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}) is None
    assert offline_variable({}) is None and offline_variable({"HF_HUB_OFFLINE": ""}) is None
    seen = proxy_settings({"https_proxy": "http://u:pw@proxy:3128", "NO_PROXY": "localhost"})
    assert seen == "https_proxy=http://u:***@proxy:3128, NO_PROXY=localhost"
    assert proxy_settings({}).startswith("none (")
