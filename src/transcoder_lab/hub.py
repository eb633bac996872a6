"""What every "could not get it from the hub" error tells the user, in one place.

The paper profiles read the Hugging Face hub (or its local cache). When something is missing the
message must say why from where the user stands: whether HF_HUB_OFFLINE is set in their
environment (then nothing can be downloaded), that one run with hub access fills the cache, and
how to get back to the offline organism profile even though a failed `dvc exp run -S profile=...`
leaves params.yaml on the paper profile (so a plain `dvc repro` would only fail again).
"""

from __future__ import annotations


def hub_reachable(timeout_s: float = 5.0) -> bool:
    """One quick TCP connection to the hub, so an offline machine goes to the cache (or fails) at
    once instead of after huggingface_hub's retries (about 25 s per request)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def offline_reason() -> str | None:
    """Why this process cannot reach the hub (None: it can). An unreachable hub switches
    huggingface_hub to offline mode for the rest of the process, so cached files are used at once
    instead of after retries of every request (minutes for a model's dozen files)."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    if not hub_reachable():
        constants.HF_HUB_OFFLINE = True  # what is_offline_mode() reads
        return "the hub is unreachable"
    return None


def offline_setting() -> str | None:
    """A sentence naming the environment setting that forbids downloads; None when they are allowed."""
    from huggingface_hub import constants

    if not constants.is_offline_mode():
        return None
    return (
        "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set in this environment, so nothing is downloaded: "
        "`unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE` and rerun with hub access to fill the cache"
    )


def hub_advice() -> str:
    """The shared tail of hub errors: the environment's offline setting, the cache, the way back."""
    parts = [offline_setting() or "with hub access, one run fills the Hugging Face cache ($HF_HOME/hub)"]
    parts.append("after that, runs work offline from the cache (HF_HUB_OFFLINE=1)")
    parts.append(
        "to run the offline organism profile instead: `dvc exp run -S profile=organism` (a failed "
        "`dvc exp run -S profile=<paper profile>` leaves params.yaml on that profile, so plain `dvc repro` "
        "would retry it; `make params PROFILE=organism` or `git checkout params.yaml` restores it)"
    )
    parts.append(
        "to check the pipeline without the hub: `python -m transcoder_lab.hub_standin <dir>` fills a "
        "stand-in cache (random weights, generated text) to use as HF_HOME"
    )
    return "; ".join(parts) + "."
