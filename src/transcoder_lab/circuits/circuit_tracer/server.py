"""circuit-tracer's graph viewer served offline on 127.0.0.1, for a folder of graph files.

`make_server`, `python -m transcoder_lab.circuits.circuit_tracer serve <folder>`: `/` and the
viewer's files from the installed assets (`assets`), HTML with each CDN address of `CDN_ROUTES`
rewritten to `/vendor/<file>` (the npm copies; the live-reload client and the .npy reader, which
graphs never use, are empty scripts); `/data/...` and `/graph_data/...` from the graph folder
(`graph_files`), as circuit-tracer's local server does; `POST /save_graph/<slug>` (the viewer's Save
button) stores the posted qParams in the graph file. Paths never leave their folder. The loopback
binding, the Host check, the headers and the JSON errors are `transcoder_lab.localhost`'s.
"""

from __future__ import annotations

import json
import mimetypes
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path

from transcoder_lab import io
from transcoder_lab.circuits.circuit_tracer.assets import (
    CDN_ROUTES,
    DEFAULT_ASSETS,
    FrontendError,
    installed_assets,
)
from transcoder_lab.circuits.circuit_tracer.graph_files import INDEX, check_name
from transcoder_lab.localhost import LocalHandler, RequestError, bind, serve_until_interrupted

DEFAULT_PORT = 8032  # circuit-tracer's default
MAX_BODY_BYTES = 1024 * 1024


def _inside(root: Path, relative: str) -> Path:
    """`root / relative` if it names a file inside `root`, else a 404."""
    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in (".", "..") or "\\" in part or "\x00" in part for part in parts):
        raise RequestError(HTTPStatus.NOT_FOUND, f"no such file: {relative!r}")
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise RequestError(HTTPStatus.NOT_FOUND, f"no such file: {relative!r}")
    return path


def rewrite_cdn(html: str) -> str:
    """The viewer's HTML with every CDN script address pointing at /vendor/ on this server."""
    for url, name in CDN_ROUTES.items():
        html = html.replace(url, f"/vendor/{name}")
    return html


def make_server(
    graph_dir: str | Path, port: int = DEFAULT_PORT, assets: str | Path = DEFAULT_ASSETS
) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1:`port` (0: any free port) for the graphs in `graph_dir`."""
    assets = installed_assets(assets)
    graph_dir = Path(graph_dir)
    if not (graph_dir / INDEX).is_file():
        raise FrontendError(f"{graph_dir} has no {INDEX}; write graphs there with write_frontend_graph")
    viewer, vendor = assets / "circuit_tracer", assets / "vendor"

    class Handler(LocalHandler):
        server_version = "transcoder-lab-graphs"
        log_name = "graphs"
        max_body_bytes = MAX_BODY_BYTES

        def _file(self, path: Path) -> None:
            body = path.read_bytes()
            if path.suffix == ".html":
                body = rewrite_cdn(body.decode("utf-8")).encode("utf-8")
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            charset = (
                "; charset=utf-8" if kind.startswith("text/") or kind.endswith(("json", "javascript")) else ""
            )
            self.send(HTTPStatus.OK, body, kind + charset)

        def get(self) -> None:
            path = self.route()
            if path == "/":
                path = "/index.html"
            if path == "/favicon.ico":  # the viewer has none; answer so the browser logs no 404
                return self.send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            for prefix in ("/data/", "/graph_data/"):  # circuit-tracer's local server's two routes
                if path.startswith(prefix):
                    return self._file(_inside(graph_dir, path[len(prefix) :]))
            if path.startswith("/vendor/"):
                return self._file(_inside(vendor, path[len("/vendor/") :]))
            self._file(_inside(viewer, path))

        def post(self) -> None:
            path = self.route()
            if not path.startswith("/save_graph/"):
                raise RequestError(HTTPStatus.NOT_FOUND, f"cannot POST to {path}")
            slug = check_name(path[len("/save_graph/") :], "slug")
            target = _inside(graph_dir, f"{slug}.json")
            body = self.read_json()
            if not isinstance(body.get("qParams"), dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, 'the body must be {"qParams": {...}}')
            graph = json.loads(target.read_text())
            graph["qParams"] = body["qParams"]
            io.write_json(target, graph)
            self.send_json(HTTPStatus.OK, {})

    return bind(Handler, port)


def serve(graph_dir: str | Path, port: int = DEFAULT_PORT, assets: str | Path = DEFAULT_ASSETS) -> None:
    server = make_server(graph_dir, port, assets)
    host, bound = server.server_address[:2]
    print(f"Serving the graphs of {graph_dir} at http://{host}:{bound}/", flush=True)
    serve_until_interrupted(server)
