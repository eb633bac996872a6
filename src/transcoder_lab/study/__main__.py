"""Command line: `python -m transcoder_lab.study serve <packet> [--port N] [--ratings DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from transcoder_lab.study.server import DEFAULT_PORT, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m transcoder_lab.study", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve a packet's cards for rating on 127.0.0.1")
    serve_parser.add_argument("packet", type=Path, help="the packet directory, e.g. study/organism/packet")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve_parser.add_argument(
        "--ratings", type=Path, default=None, help="where <rater>.json files go (default: ratings/<profile>)"
    )
    args = parser.parse_args(argv)
    try:
        serve(args.packet, args.ratings, args.port)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    except OSError as error:  # e.g. the port is taken
        parser.exit(2, f"error: cannot listen on 127.0.0.1:{args.port} ({error}); try another --port\n")


if __name__ == "__main__":
    main()
