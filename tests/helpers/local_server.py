"""Starting one of the lab's local HTTP servers in a subprocess for a browser test, and the browser
those tests share (Debian's chromium driven by Playwright; the `chromium` fixture in conftest.py).

With CI=true the browser tests must run: a missing browser or Playwright fails them. Elsewhere they
skip with the reason (install with `make browser` and `pip install -e .`).
"""

import os
import socket
import subprocess
import time
import urllib.request

import pytest

from transcoder_lab.circuits.circuit_tracer.screenshots import CHROMIUM_ARGS, chromium_path  # noqa: F401 (re-exported)

CHROMIUM = chromium_path()
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """Skip the test with `reason`, or fail it where CI=true requires it to run."""
    if IN_CI:
        pytest.fail(f"CI=true requires this test to run, but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(command: list[str], ready_url: str, timeout_s: float) -> subprocess.Popen:
    """Run `command` and return once `ready_url` answers 200; its output is kept for the error."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not answer within {timeout_s:g} s")
