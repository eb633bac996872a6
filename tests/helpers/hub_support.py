"""Support for the tests of the lab against a local stand-in hub (transcoder_lab.standins.hub_server): small
stand-in repos, a TLS certificate for it, the environment of a user's process, and the lab's three
loaders run in such a process.

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE, the proxies and its timeouts from the environment
when it is imported, so everything that downloads runs in a subprocess whose environment is built
from nothing (`client_environment`): no monkeypatching, and nothing of the test process's own
environment (e.g. `make test`'s HF_HUB_OFFLINE=1) leaks in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from transcoder_lab.config import TextSourceConfig
from transcoder_lab.dictionaries.published import PUBLISHED_REPO
from transcoder_lab.standins.gpt2 import (
    STANDIN_TEXT_FILE,
    hub_cache,
    put_repo,
    write_gpt2,
    write_published_file,
    write_published_transcoders,
    write_text_source,
)

from helpers.local_server import unavailable

SOURCE = TextSourceConfig()  # the gpt2_small profile's text: OpenWebText's parquet conversion branch
SMALL_GPT2 = {"n_layer": 2, "n_embd": 64, "n_head": 2}  # GPT-2's files and vocabulary, two narrow layers
SMALL_D_SAE = 512  # the stand-in transcoders' width (the published files are 24,576 wide)
N_DOCUMENTS = 60
MOVED = {"gpt2": "openai-community/gpt2"}  # as on the hub: gpt2 redirects to its current name


def write_small_origin(hf_home: Path, gpt2: bool = True, transcoder_layers: range | None = None) -> Path:
    """A small copy of what gpt2_small reads, to serve: GPT-2's files at two narrow layers (unless not
    `gpt2`), the text source, the transcoders at width SMALL_D_SAE (every layer, or only
    `transcoder_layers`). Returns the cache folder (`hf_home/hub`)."""
    hub_cache(hf_home).mkdir(parents=True, exist_ok=True)
    if gpt2:
        write_gpt2(hf_home, config_overrides=SMALL_GPT2)
    write_text_source(
        hf_home, SOURCE.repo, SOURCE.revision, STANDIN_TEXT_FILE, N_DOCUMENTS, row_group_size=20
    )
    if transcoder_layers is None:
        write_published_transcoders(hf_home, d_sae=SMALL_D_SAE)
    else:
        folder = hf_home / "published"
        folder.mkdir()
        files = {}
        for layer in transcoder_layers:
            files |= write_published_file(folder, layer, 768, SMALL_D_SAE, seed=0)
        put_repo(hf_home, PUBLISHED_REPO, files)
        shutil.rmtree(folder)
    return hub_cache(hf_home)


def tls_certificate(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for `names` (and 127.0.0.1) and its key, made with the openssl
    command; the client trusts it through SSL_CERT_FILE."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("the openssl command is missing (Debian package openssl)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    alt = ",".join([*(f"DNS:{name}" for name in names), "IP:127.0.0.1"])
    command = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={names[0]}",
        "-addext", f"subjectAltName={alt}", "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


def client_environment(hf_home: Path, endpoint: str | None = None, **variables: str) -> dict[str, str]:
    """A user's environment with an empty or given HF_HOME: the venv's tools on PATH, HF_ENDPOINT
    when given, and `variables` (proxies, offline settings, timeouts); nothing else of ours."""
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(hf_home.parent), "HF_HOME": str(hf_home)}
    env |= {"WANDB_MODE": "disabled", "TQDM_MININTERVAL": "60", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
    return env | variables


# The lab's loaders, as a stage calls them, in a fresh process: each named call prints its outcome
# (what it read, or the message of the error it raised) in one JSON object on the last line.
LOADERS = r"""
import json, sys, tempfile, traceback
calls, outcome = json.loads(sys.argv[1]), {}
for name, arguments in calls.items():
    try:
        if name == "model":
            from transcoder_lab.sources.models import load_pretrained
            model = load_pretrained("gpt2")
            result = {"n_layers": model.cfg.n_layers, "d_model": model.cfg.d_model,
                      "tokens": model.to_tokens("The cat", prepend_bos=False).tolist()}
        elif name == "text":
            from transcoder_lab.config import TextSourceConfig
            from transcoder_lab.sources.text_source import source_files, text_documents
            source = TextSourceConfig(**arguments)
            result = {"files": source_files(source), "documents": len(list(text_documents(source)))}
        elif name == "published":
            from transcoder_lab.dictionaries.published import (
                download_published_transcoder, import_published_transcoder)
            weights, sparsity = download_published_transcoder(arguments["layer"])
            out = tempfile.mkdtemp()
            dictionary = import_published_transcoder(weights, sparsity, arguments["layer"], out)
            result = {"d_sae": dictionary.spec.d_sae, "weights": str(weights)}
        outcome[name] = {"ok": True, "result": result}
    except Exception as error:
        outcome[name] = {"ok": False, "error": type(error).__name__, "message": str(error),
                         "traceback": traceback.format_exc()[-3000:]}
print(json.dumps(outcome))
"""


def run_loaders(env: dict[str, str], calls: dict[str, dict], timeout_s: float = 300) -> dict[str, dict]:
    """Run the named loaders (`LOADERS`) in a subprocess with `env`; their outcomes by name."""
    result = subprocess.run(
        [sys.executable, "-c", LOADERS, json.dumps(calls)], env=env, capture_output=True, text=True,
        timeout=timeout_s, cwd=env["HOME"],
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip(), result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
