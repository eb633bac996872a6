"""What a paper profile tells its user when a file comes neither from the Hugging Face hub nor its cache.

Paper profiles download from the hub once (through huggingface_hub, directly and inside transformers
and TransformerLens) and read the local cache after that. When a file cannot be had, the message
says what went wrong from where the user stands, which is one of three things (`Kind`):

1. `OFFLINE_SETTING`: offline mode is on in their environment: HF_HUB_OFFLINE, or TRANSFORMERS_OFFLINE
   (which huggingface_hub reads when HF_HUB_OFFLINE is empty), is true. `offline_variable` reads the
   environment itself, as huggingface_hub does at import, and never huggingface_hub's constant, which
   step 2 may switch.
2. `UNREACHABLE`: the hub did not answer. `offline_reason` asks the endpoint once per process, through
   huggingface_hub's own HTTP client (`get_session`: the proxies of HTTPS_PROXY / HTTP_PROXY /
   ALL_PROXY / NO_PROXY, the same certificates) with the client's metadata timeout
   (HF_HUB_ETAG_TIMEOUT): one HEAD request to the endpoint's root, where any status below 500 means
   the hub answered. When nothing answers, the finding names the endpoint, the route (direct, or
   the proxy that applies), the proxy settings seen and the timeout, and huggingface_hub is switched
   to offline mode for the rest of the process (its HF_HUB_OFFLINE constant set to
   `_HubUnreachable`, a true value that carries the finding), so that cached files are used at once
   instead of after the client's retries of every request, and so that the advice can tell this
   switch from the user's own setting. A request that fails the same way later (refused, reset,
   timed out, a proxy's 5xx) is explained the same way.
3. `NOT_ON_HUB`: the hub answered that the repo, the revision or the file does not exist (or that
   the repo is private or gated); the sentence names repo, revision and file.
Offline mode switched on by code in the process (neither the environment nor step 2) is
`OFFLINE_IN_PROCESS`; anything else is `OTHER`, told as the exception's type and text.

`explain(error, repo, ...)` turns an exception from a download into a `HubFinding` (searching its
chain of causes: transformers wraps the client's errors in OSError), and `hub_advice(finding)` is the
fix that works from there, followed by the way back to the organism profile (a failed
`dvc exp run -S profile=<paper profile>` leaves params.yaml on that profile, so a plain `dvc repro`
would only fail again) and the offline stand-in. Only the two offline findings and their advice
name HF_HUB_OFFLINE, and the first only when the environment sets it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})  # huggingface_hub's reading of a boolean variable
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# The variables huggingface_hub's HTTP client takes proxies from (through urllib's getproxies), each
# also read in lower case.
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


class Kind(Enum):
    OFFLINE_SETTING = "offline setting"
    OFFLINE_IN_PROCESS = "offline in this process"
    UNREACHABLE = "unreachable"
    NOT_ON_HUB = "not on the hub"
    OTHER = "other"


@dataclass(frozen=True)
class HubFinding:
    """Why a file could not be had from the hub: a kind and the sentence that tells the user. For an
    unreachable hub, also the endpoint and the timeout the advice repeats."""

    kind: Kind
    sentence: str
    endpoint: str | None = None
    timeout_s: float | None = None

    def __str__(self) -> str:
        return self.sentence


class _HubUnreachable(int):
    """What `offline_reason` stores in huggingface_hub.constants.HF_HUB_OFFLINE after the hub did not
    answer: the integer 1 (true, so the client's `if HF_HUB_OFFLINE` checks read offline mode) that
    carries the finding. A plain True there was set by someone else."""

    finding: HubFinding

    def __new__(cls, finding: HubFinding) -> _HubUnreachable:
        switched = super().__new__(cls, 1)
        switched.finding = finding
        return switched


# -- where the user stands ----------------------------------------------------------------------


def offline_variable(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(name, value) of the environment variable that turns huggingface_hub's offline mode on, read
    as huggingface_hub reads it: HF_HUB_OFFLINE when it is non-empty, else TRANSFORMERS_OFFLINE, on
    when the value is 1, ON, YES or TRUE in any case. None when neither turns it on."""
    env = os.environ if environ is None else environ
    name = OFFLINE_VARIABLES[0] if env.get(OFFLINE_VARIABLES[0]) else OFFLINE_VARIABLES[1]
    value = env.get(name, "")
    return (name, value) if value.upper() in TRUE_VALUES else None


def _without_password(value: str) -> str:
    """A proxy URL with the password of its user part replaced by ***."""
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def proxy_settings(environ: Mapping[str, str] | None = None) -> str:
    """The proxy variables set in the environment as `NAME=value` (passwords hidden), or a sentence
    saying that none is."""
    env = os.environ if environ is None else environ
    seen = [
        f"{name}={_without_password(env[name])}"
        for base in PROXY_VARIABLES
        for name in (base, base.lower())
        if env.get(name)
    ]
    if seen:
        return ", ".join(seen)
    return "none (HTTPS_PROXY, HTTP_PROXY and ALL_PROXY are unset, in upper and lower case)"


def route(endpoint: str) -> str:
    """How the client reaches `endpoint`, as words: through the proxy the environment gives for its
    scheme (urllib's reading, which huggingface_hub's client shares) unless NO_PROXY exempts its
    host, else on a direct connection."""
    import urllib.request

    parts = urlsplit(endpoint)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return f"through the proxy {_without_password(proxy)}"
    return "on a direct connection"


def unreachable(endpoint: str, timeout_s: float, what_happened: str) -> HubFinding:
    """The finding for an endpoint that did not answer: the route tried, the proxy settings seen."""
    sentence = (
        f"the hub is unreachable: {endpoint} did not answer within {timeout_s:g} s {route(endpoint)} "
        f"({what_happened}); proxy settings seen: {proxy_settings()}"
    )
    return HubFinding(Kind.UNREACHABLE, sentence, endpoint, timeout_s)


def probe_hub() -> HubFinding | None:
    """Ask the endpoint once (module docstring, 2): None when it answers, else the finding."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    endpoint, timeout_s = constants.ENDPOINT, float(constants.HF_HUB_ETAG_TIMEOUT)
    try:
        response = get_session().head(f"{endpoint}/", timeout=timeout_s, follow_redirects=False)
    except Exception as error:  # the client's transport errors: refused, unknown name, timeout, proxy
        return unreachable(endpoint, timeout_s, f"{type(error).__name__}: {error}")
    if response.status_code >= 500:
        return unreachable(endpoint, timeout_s, f"it answered HTTP {response.status_code}")
    return None


def _process_offline() -> HubFinding:
    """Offline mode switched on inside this process by someone other than the environment or us."""
    return HubFinding(
        Kind.OFFLINE_IN_PROCESS,
        "huggingface_hub's offline mode is on in this process although your environment does not set "
        "it (huggingface_hub.constants.HF_HUB_OFFLINE is set by code that ran before), so nothing is "
        "downloaded",
    )


_ANSWERED: set[str] = set()  # endpoints that answered this process's check


def offline_reason() -> HubFinding | None:
    """Why this process downloads nothing (None: downloads are allowed and the hub answers).

    When huggingface_hub's offline mode is on, the reason is the user's environment variable if one
    is set, else our own earlier finding carried by the switch, else code in the process. When it is
    off, the endpoint is asked once per process (an answer is remembered); if it does not answer,
    offline mode is switched on with the finding (module docstring, 2).
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        variable = offline_variable()
        if variable is not None:
            name, value = variable
            return HubFinding(
                Kind.OFFLINE_SETTING,
                f"{name} is set in your environment ({name}={value}), so huggingface_hub downloads nothing",
            )
        if isinstance(constants.HF_HUB_OFFLINE, _HubUnreachable):
            return constants.HF_HUB_OFFLINE.finding
        return _process_offline()
    if constants.ENDPOINT in _ANSWERED:
        return None
    finding = probe_hub()
    if finding is None:
        _ANSWERED.add(constants.ENDPOINT)
    else:
        constants.HF_HUB_OFFLINE = _HubUnreachable(finding)  # what is_offline_mode() returns
    return finding


# -- explaining a failed download ---------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes (`raise ... from`, or raised while handling), first to last."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not known for known in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _repo_words(repo: str, repo_type: str) -> str:
    return f"{repo_type} repo {repo}"


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The errors of a request that got no answer: the transport-error classes of the HTTP libraries
    huggingface_hub has used (httpx2 from 2.0, httpx in 1.x, requests before), and Python's own."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import httpx2

        found.append(httpx2.TransportError)
    except ImportError:
        pass
    try:
        import httpx

        found.append(httpx.TransportError)
    except ImportError:
        pass
    try:
        import requests

        found += [requests.ConnectionError, requests.Timeout]
    except ImportError:
        pass
    return tuple(found)


def explain(
    error: BaseException,
    repo: str,
    filename: str | None = None,
    revision: str | None = None,
    repo_type: str = "model",
) -> HubFinding:
    """The finding for an exception raised while getting `filename` of `repo` at `revision` (module
    docstring): the hub's answer that something does not exist, offline mode (the user's or ours),
    an unanswered request, or else the exception itself."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    revision = revision or "main"
    where = _repo_words(repo, repo_type)
    chain = _chain(error)
    for cause in chain:
        if isinstance(cause, GatedRepoError):
            return HubFinding(
                Kind.NOT_ON_HUB,
                f"the {where} is gated: the hub serves it only to accounts that were granted access",
            )
        if isinstance(cause, RepositoryNotFoundError):
            return HubFinding(
                Kind.NOT_ON_HUB,
                f"the hub has no {where} (or it is private and no token with access to it was sent)",
            )
        if isinstance(cause, RevisionNotFoundError):
            return HubFinding(Kind.NOT_ON_HUB, f"the hub has no revision {revision} of the {where}")
        if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
            named = filename or "the requested file"
            return HubFinding(
                Kind.NOT_ON_HUB, f"the hub has no file {named} in the {where} at revision {revision}"
            )
    # transformers reports files it found nowhere in an OSError of its own, without the client's
    # error: with downloads allowed the hub lacks them; offline, the cache does (the offline reason).
    missing = re.search(r"does not appear to have (?:a file|files) named (.+?)\.(?:\s|$)", str(error))
    if missing and not constants.is_offline_mode():
        return HubFinding(
            Kind.NOT_ON_HUB, f"the hub has no file {missing[1]} in the {where} at revision {revision}"
        )
    if missing or any(isinstance(cause, OfflineModeIsEnabled | LocalEntryNotFoundError) for cause in chain):
        reason = offline_reason()
        if reason is not None:
            return reason
    for cause in chain:
        if isinstance(cause, _transport_errors()) and not isinstance(cause, OfflineModeIsEnabled):
            return unreachable(
                constants.ENDPOINT, float(constants.HF_HUB_ETAG_TIMEOUT), f"{type(cause).__name__}: {cause}"
            )
        if isinstance(cause, HfHubHTTPError) and cause.response.status_code >= 500:
            return unreachable(
                constants.ENDPOINT,
                float(constants.HF_HUB_ETAG_TIMEOUT),
                f"it answered HTTP {cause.response.status_code}",
            )
    return HubFinding(Kind.OTHER, f"{type(error).__name__}: {error}")


# -- the fix ------------------------------------------------------------------------------------


def hub_advice(finding: HubFinding | None = None) -> str:
    """The fix for `finding` from where the user stands, then the ways to run without the hub."""
    if finding is None or finding.kind is Kind.OTHER:
        first = [
            "with hub access, one run fills the Hugging Face cache ($HF_HOME/hub) and later runs read it "
            "without the hub"
        ]
    elif finding.kind is Kind.OFFLINE_IN_PROCESS:
        first = [
            "run in a fresh process, or find the code that sets huggingface_hub.constants.HF_HUB_OFFLINE "
            "before this call"
        ]
    elif finding.kind is Kind.OFFLINE_SETTING:
        first = [
            "`unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE` and run once with hub access to fill the Hugging "
            "Face cache ($HF_HOME/hub); after that, runs work offline from the cache (HF_HUB_OFFLINE=1)"
        ]
    elif finding.kind is Kind.UNREACHABLE:
        first = [
            f"check that this machine reaches {finding.endpoint} (`curl -I {finding.endpoint}/`): behind an "
            "HTTP proxy, export HTTPS_PROXY and HTTP_PROXY as your site documents (the Hugging Face client "
            "uses them); to download from a mirror, set HF_ENDPOINT; on a slow link, raise "
            f"HF_HUB_ETAG_TIMEOUT (seconds; now {finding.timeout_s:g})",
            "or fill the cache ($HF_HOME/hub) on a machine with hub access and copy it here: runs read it "
            "without the hub",
        ]
    else:  # NOT_ON_HUB
        first = [
            "check the repo, revision and file names against the hub; a private or gated repo needs a token "
            "with access (`hf auth login`, or HF_TOKEN)"
        ]
    rest = [
        "to run the offline organism profile instead: `dvc exp run -S profile=organism` (a failed "
        "`dvc exp run -S profile=<paper profile>` leaves params.yaml on that profile, so plain `dvc repro` "
        "would retry it; `make params PROFILE=organism` or `git checkout params.yaml` restores it)",
        "to check the pipeline without the hub: `python -m transcoder_lab.standins.gpt2 <dir>` fills a "
        "stand-in cache (random weights, generated text) to use as HF_HOME",
    ]
    return "; ".join(first + rest) + "."
