"""PNGs of graphs as circuit-tracer's viewer draws them, in headless Chromium.

`screenshots`, `python -m transcoder_lab.circuits.circuit_tracer screenshot <folder> <out dir>
<slug>...`, the `graph_screenshots` stage: the viewer's server (`server.make_server`) on a free port,
in a thread; headless Chromium (Debian's, `make browser`, or $CHROMIUM) driven by Playwright loads
`/?slug=<slug>`, and once the graph's nodes and token labels are drawn the target logit is clicked
(the viewer then draws its input links and lists them) and the page is captured.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from transcoder_lab.circuits.circuit_tracer.assets import DEFAULT_ASSETS, FrontendError
from transcoder_lab.circuits.circuit_tracer.graph_files import check_name
from transcoder_lab.circuits.circuit_tracer.server import make_server
from transcoder_lab.localhost import HOST


def chromium_path() -> Path:
    """Debian's chromium (`make browser`), or the browser the CHROMIUM environment variable names."""
    return Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def screenshots(
    graph_dir: str | Path,
    slugs: Sequence[str],
    out_dir: str | Path,
    assets: str | Path = DEFAULT_ASSETS,
    size: tuple[int, int] = (1400, 900),
    timeout_s: float = 60.0,
    browser: Any = None,
) -> list[Path]:
    """`out_dir/<slug>.png` for each graph of `graph_dir` named in `slugs`, as circuit-tracer's
    viewer draws it (module docstring): `make_server` on a free port of 127.0.0.1 in a
    thread; each page captured once the graph's nodes and token labels are drawn; written atomically.
    `browser`: a Playwright browser to use (default: launch headless Chromium, `chromium_path`)."""
    server = make_server(graph_dir, 0, assets)  # missing assets or graphs: the fix, before any browser
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        if browser is not None:
            return [
                _capture(browser, server, Path(graph_dir), slug, Path(out_dir), size, timeout_s)
                for slug in slugs
            ]
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as error:
            raise FrontendError("screenshots need playwright: pip install -e . (a dependency)") from error
        executable = chromium_path()
        if not executable.exists():
            raise FrontendError(
                f"no browser at {executable}: run `make browser` (apt-get install chromium), or set "
                "CHROMIUM to a Chromium or Chrome executable"
            )
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
            try:
                return [
                    _capture(launched, server, Path(graph_dir), slug, Path(out_dir), size, timeout_s)
                    for slug in slugs
                ]
            finally:
                launched.close()
    finally:
        server.shutdown()
        server.server_close()


def _target_node(data: Mapping[str, Any]) -> str | None:
    """The node the screenshot clicks: the target logit (circuit-tracer's is_target_logit)."""
    logits = [node for node in data["nodes"] if node["feature_type"] == "logit"]
    marked = [node for node in logits if node.get("is_target_logit")]
    return (marked or logits or [{"node_id": None}])[0]["node_id"]


def _capture(
    browser: Any,
    server: ThreadingHTTPServer,
    graph_dir: Path,
    slug: str,
    out_dir: Path,
    size: tuple[int, int],
    timeout_s: float,
) -> Path:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://{HOST}:{server.server_address[1]}/?slug={check_name(slug, 'slug')}")
        for drawn in (".link-graph text.node", ".link-graph g.prompt-token text"):
            page.wait_for_selector(drawn, timeout=timeout_s * 1000)
        target = _target_node(json.loads((Path(graph_dir) / f"{slug}.json").read_text()))
        index = page.evaluate(
            "id => Array.from(document.querySelectorAll('.link-graph text.node'))"
            ".findIndex(e => d3.select(e).datum().nodeId === id)",
            target,
        )
        if index >= 0:  # click the target: the viewer draws its input links and lists them
            box = page.locator(".link-graph text.node").nth(index).bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_selector(".node-connections .feature-row", timeout=timeout_s * 1000)
        if errors:
            raise FrontendError(f"the viewer failed on graph {slug!r}: {errors}")
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{slug}.png"
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            staged = Path(tmp) / out.name
            page.screenshot(path=str(staged), full_page=True)
            staged.replace(out)
        return out
    finally:
        page.close()
