"""`python -m transcoder_lab.circuits.circuit_tracer`: fetch or install the viewer, serve a graph
folder, or capture graphs as PNGs (the package docstring lists the modules behind each command)."""

from __future__ import annotations

import argparse
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from transcoder_lab.circuits import circuit_tracer
from transcoder_lab.circuits.circuit_tracer.assets import DEFAULT_ASSETS, FrontendError, fetch, install
from transcoder_lab.circuits.circuit_tracer.screenshots import screenshots
from transcoder_lab.circuits.circuit_tracer.server import DEFAULT_PORT, serve

PROG = "python -m transcoder_lab.circuits.circuit_tracer"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=circuit_tracer.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download and install the front end (make frontend)")
    fetch_parser.add_argument("dest", type=Path, nargs="?", default=DEFAULT_ASSETS)
    install_parser = commands.add_parser("install", help="install already downloaded files")
    install_parser.add_argument("downloads", type=Path)
    install_parser.add_argument("dest", type=Path, nargs="?", default=DEFAULT_ASSETS)
    serve_parser = commands.add_parser("serve", help="serve a graph folder on 127.0.0.1")
    serve_parser.add_argument("graph_dir", type=Path, help="a folder holding graph-metadata.json")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve_parser.add_argument(
        "--assets", type=Path, default=DEFAULT_ASSETS, help="where `make frontend` put them"
    )
    shot_parser = commands.add_parser("screenshot", help="PNGs of graphs in the viewer (headless Chromium)")
    shot_parser.add_argument("graph_dir", type=Path, help="a folder holding graph-metadata.json")
    shot_parser.add_argument("out_dir", type=Path, help="where <slug>.png goes")
    shot_parser.add_argument("slugs", nargs="+", help="the graphs' slugs")
    shot_parser.add_argument("--assets", type=Path, default=DEFAULT_ASSETS)
    args = parser.parse_args(argv)
    try:
        if args.command == "screenshot":
            print(*screenshots(args.graph_dir, args.slugs, args.out_dir, args.assets), sep="\n")
        elif args.command == "fetch":
            fetch(args.dest)
        elif args.command == "install":
            install(args.downloads, args.dest)
        else:
            serve(args.graph_dir, args.port, args.assets)
    except (FrontendError, OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        print(f"frontend: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
