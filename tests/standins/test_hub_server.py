"""The lab's downloads against a local server in the hub's protocol (transcoder_lab.standins.hub_server), with
huggingface_hub's real client in subprocesses: listings, revisions, redirects, the hub's errors, an
interrupted download resumed in process, a server killed mid-file, and the only route to the hub
being an HTTP proxy (HTTPS through CONNECT, and plain HTTP)."""

import hashlib
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from transcoder_lab.dictionaries.published import PUBLISHED_REPO, published_weights_filename
from transcoder_lab.standins.gpt2 import STANDIN_TEXT_FILE, repo_folder
from transcoder_lab.standins.hub_server import HubServer

from helpers.forward_proxy import ForwardProxy
from helpers.hub_support import (
    LOADERS,
    MOVED,
    N_DOCUMENTS,
    SMALL_D_SAE,
    SMALL_GPT2,
    SOURCE,
    client_environment,
    run_loaders,
    tls_certificate,
    write_small_origin,
)

HIDDEN = {"hub.invalid": "127.0.0.1", "cdn.invalid": "127.0.0.1"}  # names only the proxy resolves


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """The HF_HOME whose repos the server serves."""
    home = tmp_path_factory.mktemp("hub_origin")
    write_small_origin(home)
    return home


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def origin_file(origin: Path, repo: str, path: str, repo_type: str = "model", revision: str = "main") -> Path:
    folder = repo_folder(origin, repo, repo_type)
    return folder / "snapshots" / (folder / "refs" / revision).read_text() / path


PROTOCOL = r"""
import json, sys
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
repo, revision, path = sys.argv[1:4]
api, out = HfApi(), {}
out["gpt2_files"] = api.list_repo_files("gpt2")
out["dataset_files"] = api.list_repo_files(repo, repo_type="dataset", revision=revision)
out["gpt2_commit"] = api.repo_info("gpt2").sha
out["parquet"] = hf_hub_download(repo, path, repo_type="dataset", revision=revision)
out["config"] = hf_hub_download("gpt2", "config.json")
out["weights"] = hf_hub_download("gpt2", "model.safetensors")
errors = {
    "file": lambda: hf_hub_download("gpt2", "nothing.json"),
    "revision": lambda: hf_hub_download(repo, path, repo_type="dataset", revision="refs/convert/none"),
    "repo": lambda: hf_hub_download("someone/absent", "config.json"),
}
out["errors"] = {}
for case, call in errors.items():
    try:
        call()
    except Exception as error:
        out["errors"][case] = type(error).__name__
print(json.dumps(out))
"""


def test_the_client_lists_resolves_and_downloads_as_from_the_hub(origin, tmp_path):
    """Listings in pages (two entries each), a revision with slashes, small files answered directly,
    LFS files redirected to the CDN, a moved repo followed, and the hub's three not-found errors."""
    hf_home = tmp_path / "hf_home"
    with HubServer(origin / "hub", moved=MOVED, page_size=2) as server:
        env = client_environment(hf_home, server.url)
        arguments = [SOURCE.repo, SOURCE.revision, STANDIN_TEXT_FILE]
        result = subprocess.run(
            [sys.executable, "-c", PROTOCOL, *arguments], env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    gpt2 = repo_folder(origin, "gpt2")
    commit = (gpt2 / "refs" / "main").read_text()
    snapshot = gpt2 / "snapshots" / commit
    assert out["gpt2_files"] == sorted(
        str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()
    )
    assert out["dataset_files"] == [STANDIN_TEXT_FILE]
    assert out["gpt2_commit"] == commit
    for key, (repo, path, kind, revision) in {
        "parquet": (SOURCE.repo, STANDIN_TEXT_FILE, "dataset", SOURCE.revision),
        "config": ("gpt2", "config.json", "model", "main"),
        "weights": ("gpt2", "model.safetensors", "model", "main"),
    }.items():
        assert sha256(Path(out[key])) == sha256(origin_file(origin, repo, path, kind, revision)), key
    # the client keeps the revision's name as the hub's ref, and the name it asked for (not the moved one)
    dataset_ref = repo_folder(hf_home, SOURCE.repo, "dataset") / "refs" / SOURCE.revision
    assert (
        dataset_ref.read_text()
        == (repo_folder(origin, SOURCE.repo, "dataset") / "refs" / SOURCE.revision).read_text()
    )
    assert (
        repo_folder(hf_home, "gpt2").is_dir() and not repo_folder(hf_home, "openai-community/gpt2").exists()
    )
    assert out["errors"] == {"file": "RemoteEntryNotFoundError", "revision": "RevisionNotFoundError",
                             "repo": "RepositoryNotFoundError"}  # fmt: skip
    paths = [(s.origin, s.method, s.status, s.path) for s in server.served]
    assert ("hub", "GET", 307, "/api/models/gpt2/tree/main?recursive=true&expand=false") in paths
    assert sum(1 for o, m, st, p in paths if "/tree/main" in p and st == 200 and "cursor=" in p) >= 2  # pages
    assert any(o == "cdn" and m == "GET" and st == 200 for o, m, st, _ in paths)  # LFS bytes from the CDN
    assert ("hub", "GET", 200, "/openai-community/gpt2/resolve/main/config.json") in paths
    assert server.unhandled == []


def test_a_dropped_connection_resumes_with_a_range_request(origin, tmp_path):
    """The server closes the connection after 12 MB of the weights (13.5 MB); the client asks for the
    rest with `Range: bytes=<written>-` in the same call (it writes in blocks of 10 MiB, so the bytes
    of an unfinished block are asked again) and the file is whole."""
    hf_home = tmp_path / "hf_home"
    with HubServer(origin / "hub", interrupt_after_bytes=12_000_000, interrupt="drop") as server:
        code = (
            "from huggingface_hub import hf_hub_download; print(hf_hub_download('gpt2', 'model.safetensors'))"
        )
        env = client_environment(hf_home, server.url)
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert sha256(Path(result.stdout.strip().splitlines()[-1])) == sha256(
        origin_file(origin, "gpt2", "model.safetensors")
    )
    cdn = [(s.status, s.range) for s in server.served if s.origin == "cdn"]
    assert cdn[0] == (200, None) and cdn[1][0] == 206 and cdn[1][1].startswith("bytes=")
    assert 0 < int(cdn[1][1].removeprefix("bytes=").rstrip("-")) <= 12_000_000


def _lines(process: subprocess.Popen) -> "queue.Queue[str]":
    """A process's output lines, read by a thread (so waiting for one can time out)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_server_killed_mid_file_leaves_no_partial_file_and_the_next_run_completes(origin, tmp_path):
    """The lab's transcoder download from a server process that is killed after sending 1 MB of the
    weights: the download fails naming the unanswering endpoint, the cache holds neither the blob
    under its final name, nor a snapshot link, nor a temporary file; the next run completes."""
    hf_home = tmp_path / "hf_home"
    command = [sys.executable, "-m", "transcoder_lab.standins.hub_server", str(origin),
               "--stall-after-bytes", "1000000", "--lifetime", "120"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = _lines(server)
        url = lines.get(timeout=60).split()[1]
        env = client_environment(hf_home, url)
        client = subprocess.Popen(
            [sys.executable, "-c", LOADERS, json.dumps({"published": {"layer": 0}})],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        stalled = lines.get(timeout=120)
        assert stalled.startswith("stalled final_sparse_autoencoder"), stalled
    finally:
        server.kill()  # mid-file
        server.wait(timeout=30)
    stdout, stderr = client.communicate(timeout=120)
    outcome = json.loads(stdout.strip().splitlines()[-1])["published"]
    assert not outcome["ok"] and outcome["error"] == "PublishedTranscoderUnavailableError", stderr[-3000:]
    assert (
        f"the hub is unreachable: {url} did not answer within 10 s on a direct connection ("
        in outcome["message"]
    )
    weights = published_weights_filename(0)
    expected = sha256(origin_file(origin, PUBLISHED_REPO, weights))
    folder = repo_folder(hf_home, PUBLISHED_REPO)
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    assert not (folder / "blobs" / expected).exists(), left
    assert not any(name.endswith(weights) or name.endswith(".incomplete") for name in left), left

    with HubServer(origin / "hub") as restarted:
        outcome = run_loaders(client_environment(hf_home, restarted.url), {"published": {"layer": 0}})[
            "published"
        ]
    assert outcome["ok"], outcome
    assert outcome["result"]["d_sae"] == SMALL_D_SAE
    assert sha256(Path(outcome["result"]["weights"])) == expected


def test_the_lab_downloads_through_an_https_proxy_only(origin, tmp_path):
    """HTTPS_PROXY (and HTTP_PROXY) name a forwarding proxy; the hub and its CDN are HTTPS origins
    whose names (hub.invalid, cdn.invalid) only the proxy resolves, so every connection the server
    accepts is a proxy tunnel. The model, the text source and a transcoder all load, and the lab's
    reachability check went through the proxy too."""
    cert, key = tls_certificate(tmp_path, list(HIDDEN))
    with (
        HubServer(
            origin / "hub", moved=MOVED, hub_host="hub.invalid", cdn_host="cdn.invalid", tls=(cert, key)
        ) as server,
        ForwardProxy(HIDDEN) as proxy,
    ):
        env = client_environment(
            tmp_path / "hf_home",
            server.url,
            HTTPS_PROXY=proxy.url,
            HTTP_PROXY=proxy.url,
            SSL_CERT_FILE=str(cert),
        )
        outcome = run_loaders(env, {"model": {}, "text": {}, "published": {"layer": 5}})
    for name, result in outcome.items():
        assert result["ok"], (name, result.get("traceback"))
    assert (outcome["model"]["result"]["n_layers"], outcome["model"]["result"]["d_model"]) == (
        SMALL_GPT2["n_layer"], SMALL_GPT2["n_embd"],
    )  # fmt: skip
    assert outcome["model"]["result"]["tokens"] == [[464, 3797]]  # GPT-2's "The", " cat"
    assert outcome["text"]["result"] == {"files": [STANDIN_TEXT_FILE], "documents": N_DOCUMENTS}
    assert outcome["published"]["result"]["d_sae"] == SMALL_D_SAE
    assert {(method, host) for method, host, _ in proxy.forwarded} == {
        ("CONNECT", "hub.invalid"),
        ("CONNECT", "cdn.invalid"),
    }
    assert proxy.refused == []
    assert server.connections == len(proxy.forwarded)  # no connection but the proxy's
    print(f"{len(proxy.forwarded)} CONNECT tunnels through {proxy.url} carried {len(server.served)} requests")
    assert any(s.method == "HEAD" and s.path == "/" for s in server.served)  # the lab's check, proxied
    assert server.unhandled == []


def test_the_text_source_downloads_through_a_plain_http_proxy(origin, tmp_path):
    """The same over plain HTTP: HTTP_PROXY receives absolute-form requests and forwards each."""
    with (
        HubServer(origin / "hub", hub_host="hub.invalid", cdn_host="cdn.invalid") as server,
        ForwardProxy(HIDDEN) as proxy,
    ):
        env = client_environment(tmp_path / "hf_home", server.url, HTTP_PROXY=proxy.url)
        outcome = run_loaders(env, {"text": {}})
    assert outcome["text"] == {
        "ok": True,
        "result": {"files": [STANDIN_TEXT_FILE], "documents": N_DOCUMENTS},
    }
    assert ("HEAD", "hub.invalid") in {(m, h) for m, h, _ in proxy.forwarded}  # the reachability check
    assert ("GET", "cdn.invalid") in {(m, h) for m, h, _ in proxy.forwarded}  # the parquet's bytes
    assert server.connections == len(proxy.forwarded) and proxy.refused == []
