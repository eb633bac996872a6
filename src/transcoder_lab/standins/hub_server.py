"""A local server that speaks the Hugging Face hub's download protocol, serving stand-in repos.

The paper profiles download from the hub through huggingface_hub (directly, and inside transformers
and TransformerLens). This server answers the requests that client makes, from repos kept in a
Hugging Face cache folder (the layout `transcoder_lab.standins.gpt2` writes), so that
`HF_ENDPOINT=<url>` points the real client at it and a run starts from an empty cache exactly as a
user's first run does against the hub:

    python -m transcoder_lab.standins.gpt2 /tmp/origin             # the repos to serve
    python -m transcoder_lab.standins.hub_server /tmp/origin     # prints the endpoint URL
    HF_ENDPOINT=<url> HF_HOME=/tmp/empty dvc exp run -S profile=gpt2_small -S budget=smoke ...

It listens on 127.0.0.1 only, on two ports: the hub and a "CDN" (another origin, as the hub's
storage is), over plain HTTP or, given a certificate and key (`tls`), HTTPS. What it answers, as the
hub does:
1. `HEAD|GET /<repo>/resolve/<revision>/<path>` (`/datasets/<repo>/...` for datasets). Each path
   segment is percent-decoded on its own, so the client's `refs%2Fconvert%2Fparquet` is one revision.
   The revision is a ref (a file under the repo folder's `refs/`, e.g. `main` or
   `refs/convert/parquet`) or a commit (a folder under `snapshots/`). A small text file answers 200
   with its bytes, `ETag` (its git blob id) and `X-Repo-Commit`. A binary or large file, which the
   hub keeps in LFS, answers 302 to the CDN with `X-Linked-Etag` (its SHA-256), `X-Linked-Size`,
   `X-Repo-Commit` and the `ETag` of its LFS pointer; the client reads the metadata from that
   redirect and downloads from the CDN.
2. The CDN: `HEAD|GET /blobs/<sha256>`, with single byte ranges (`Range: bytes=N-` answers 206 and
   `Content-Range`), which the client uses to resume an interrupted download.
3. `GET /api/<type>s/<repo>/tree/<revision>[/<path>]?recursive=...`: the listing behind
   `list_repo_files`, as JSON entries (`type`, `path`, `size`, `oid`, and `lfs` for LFS files) in
   pages of `page_size` entries, each page linking the next with a `Link: <url>; rel="next"` header.
   `GET /api/<type>s/<repo>[/revision/<revision>]`: the repo's info (`id`, `sha`: the commit,
   `siblings`), from which transformers pins a revision to its commit; `GET /api/agent-harnesses`:
   the client's registry of coding agents (empty here).
4. A moved repo (`moved`, old name -> current name; the hub's `gpt2` is now
   `openai-community/gpt2`) answers 307 to the same path under its current name; the client follows
   redirects within the hub's origin and keeps the name it asked for in its cache.
5. Errors carry the hub's `X-Error-Code` header, from which the client raises its typed errors:
   `RepoNotFound` (401, as the hub answers an anonymous request for a repo it does not show),
   `RevisionNotFound` and `EntryNotFound` (404; the latter with `X-Repo-Commit`).
Any other path answers 404 and is kept in `unhandled`, so a test notices a request it did not expect.

Two test hooks interrupt CDN bodies after `interrupt_after_bytes` bytes: `interrupt="drop"` closes
the connection once (the client resumes with a range request), `interrupt="stall"` stops sending and
announces it (`on_stall`), so that a test can kill the server mid-file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

LOOPBACK = "127.0.0.1"
# What the hub stores in LFS: binary formats (its default .gitattributes) and anything large.
LFS_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".parquet", ".arrow"}
)
LFS_MIN_SIZE = 10 * 1024 * 1024
URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20
PAGE_SIZE = 1000  # the hub's page size for tree listings without `expand`
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"  # the date every stand-in repo reports


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content: SHA-1 of `blob <size>\\0<bytes>` (the hub's ETag of a
    file kept in git)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer git keeps for an LFS file (the hub's `ETag` and tree `oid` are its blob id)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class RepoFile:
    """One file of a served repo: where its bytes are here and the ids the hub gives it."""

    path: str
    local: Path
    size: int
    sha256: str
    lfs: bool
    blob_id: str  # git's id of what git holds: the bytes, or for an LFS file its pointer


@dataclass(frozen=True)
class Served:
    """One request as the server saw it (for tests' assertions)."""

    origin: str  # "hub" or "cdn"
    method: str
    path: str
    status: int
    range: str | None
    handled: bool = True  # False: a path this server does not implement


class StandinRepos:
    """The repos held in a Hugging Face cache folder (`<cache>/<type>s--<owner>--<name>/`), read as
    the hub serves them. `moved` maps an old repo name to its current one: the current name is served
    from the old name's folder, and the old name redirects (module docstring, 4)."""

    def __init__(self, cache: str | Path, moved: Mapping[str, str] | None = None) -> None:
        self.cache = Path(cache)
        self.moved = dict(moved or {})
        self._stored_as = {current: old for old, current in self.moved.items()}
        self._files: dict[Path, RepoFile] = {}
        self._by_sha256: dict[str, RepoFile] = {}
        self._lock = threading.Lock()

    def folder(self, repo_type: str, repo_id: str) -> Path | None:
        stored = self._stored_as.get(repo_id, repo_id)
        folder = self.cache / f"{repo_type}s--{stored.replace('/', '--')}"
        return folder if folder.is_dir() and repo_id not in self.moved else None

    @staticmethod
    def commit(folder: Path, revision: str) -> str | None:
        """The commit a revision names: a snapshot's own id, or the content of a ref file."""
        if COMMIT.fullmatch(revision) and (folder / "snapshots" / revision).is_dir():
            return revision
        if ".." in revision.split("/"):
            return None
        ref = folder / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
        return commit if (folder / "snapshots" / commit).is_dir() else None

    @staticmethod
    def paths(folder: Path, commit: str) -> list[str]:
        snapshot = folder / "snapshots" / commit
        return sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())

    def file(self, folder: Path, commit: str, path: str) -> RepoFile | None:
        """A file's ids, computed once per blob. A blob named by 64 hex digits (standins.gpt2 names
        blobs by SHA-256) is taken at its name; any other is hashed."""
        if ".." in path.split("/"):
            return None
        local = folder / "snapshots" / commit / path
        if not local.is_file():
            return None
        blob = local.resolve()
        with self._lock:
            if blob in self._files:
                known = self._files[blob]
                return RepoFile(path, local, known.size, known.sha256, known.lfs, known.blob_id)
        size = blob.stat().st_size
        lfs = local.suffix in LFS_SUFFIXES or size >= LFS_MIN_SIZE
        if SHA256.fullmatch(blob.name):
            sha256 = blob.name
        else:
            digest = hashlib.sha256()
            with blob.open("rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    digest.update(block)
            sha256 = digest.hexdigest()
        blob_id = git_blob_id(lfs_pointer(sha256, size) if lfs else blob.read_bytes())
        found = RepoFile(path, local, size, sha256, lfs, blob_id)
        with self._lock:
            self._files[blob] = found
            self._by_sha256[sha256] = found
        return found

    def by_sha256(self, sha256: str) -> RepoFile | None:
        """A file the hub side has already named (the CDN serves only what a redirect pointed at)."""
        with self._lock:
            return self._by_sha256.get(sha256)


class HubServer:
    """The hub and CDN origins on 127.0.0.1, each a threaded HTTP server in a daemon thread.

    `hub_host`/`cdn_host` are the names the URLs it hands out use (default 127.0.0.1; a test that
    only reaches the server through a proxy gives names only the proxy resolves). Use as a context
    manager, or `start()` and `stop()`.
    """

    def __init__(
        self,
        cache: str | Path,
        moved: Mapping[str, str] | None = None,
        hub_host: str = LOOPBACK,
        cdn_host: str = LOOPBACK,
        page_size: int = PAGE_SIZE,
        interrupt_after_bytes: int | None = None,
        interrupt: str = "drop",
        on_stall: Callable[[str], None] | None = None,
        tls: tuple[str | Path, str | Path] | None = None,
    ) -> None:
        if interrupt not in ("drop", "stall"):
            raise ValueError(f"interrupt is 'drop' or 'stall', not {interrupt!r}")
        self.repos = StandinRepos(cache, moved)
        self.hub_host, self.cdn_host = hub_host, cdn_host
        self.page_size = page_size
        self.interrupt_after_bytes, self.interrupt, self.on_stall = interrupt_after_bytes, interrupt, on_stall
        self.tls = tls
        self.served: list[Served] = []
        self.connections = 0  # TCP connections accepted, both origins
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._ports: dict[str, int] = {}

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> HubServer:
        for origin in ("hub", "cdn"):
            server = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
            server.daemon_threads = True
            if self.tls is not None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*self.tls)
                server.socket = context.wrap_socket(server.socket, server_side=True)
            server.hub, server.origin = self, origin  # type: ignore[attr-defined]
            self._servers[origin] = server
            self._ports[origin] = server.server_address[1]
            threading.Thread(target=server.serve_forever, name=f"stand-in {origin}", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop both origins (again: nothing); their ports refuse connections after it."""
        self.stopped.set()  # releases stalled handlers
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def port(self, origin: str = "hub") -> int:
        """The origin's port (kept after `stop`, when it refuses connections)."""
        return self._ports[origin]

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def url(self) -> str:
        """The endpoint to give as HF_ENDPOINT."""
        return f"{self.scheme}://{self.hub_host}:{self.port('hub')}"

    @property
    def cdn_url(self) -> str:
        return f"{self.scheme}://{self.cdn_host}:{self.port('cdn')}"

    def record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    @property
    def unhandled(self) -> list[Served]:
        """Requests for paths this server does not implement (404 without the hub's error code)."""
        with self._lock:
            return [s for s in self.served if not s.handled]

    def take_interrupt(self) -> tuple[int, str] | None:
        """The pending interruption, if any; a drop happens once."""
        with self._lock:
            if self.interrupt_after_bytes is None:
                return None
            pending = (self.interrupt_after_bytes, self.interrupt)
            if self.interrupt == "drop":
                self.interrupt_after_bytes = None
            return pending


class _Handler(BaseHTTPRequestHandler):
    """Routes one request of either origin (module docstring, 1-5)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects of the hub
    timeout = 60  # an idle keep-alive connection is closed after a minute

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass  # requests are recorded in HubServer.served instead of printed

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def setup(self) -> None:
        with self.hub._lock:
            self.hub.connections += 1
        super().setup()

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._route(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._route(body=True)

    # -- routing ------------------------------------------------------------------------------

    def _route(self, body: bool) -> None:
        split = urlsplit(self.path)
        raw = [segment for segment in split.path.split("/") if segment]
        segments = [unquote(segment) for segment in raw]
        if self.server.origin == "cdn":  # type: ignore[attr-defined]
            if len(segments) == 2 and segments[0] == "blobs":
                return self._blob(segments[1], body)
            return self._unhandled()
        if not segments:
            return self._send(200, {"Content-Type": "text/plain"}, b"stand-in hub\n", body)
        if segments == ["api", "agent-harnesses"]:  # the client's user-agent registry: none known here
            registry = {"standardEnvVars": [], "harnesses": {}}
            return self._send(200, {"Content-Type": "application/json"}, json.dumps(registry).encode(), body)
        api = segments[0] == "api" and len(segments) >= 3 and segments[1] in URL_TYPES
        if api:
            repo_type, first = URL_TYPES[segments[1]], 2
        elif segments[0] in ("datasets", "spaces"):
            repo_type, first = URL_TYPES[segments[0]], 1
        else:
            repo_type, first = "model", 0
        # A repo id is one segment ("gpt2") or two ("owner/name"); the segment after it names the request.
        actions = (None, "revision", "tree") if api else ("resolve",)
        last = next(
            (n for n in (first + 1, first + 2) if (segments[n : n + 1] or [None])[0] in actions), None
        )
        if last is None:
            return self._unhandled()
        repo_id, action, rest = (
            "/".join(segments[first:last]),
            (segments[last:] or [None])[0],
            segments[last + 1 :],
        )
        if self._moved(raw, first, last, repo_id, split.query):
            return None
        if action == "resolve" and len(rest) >= 2:
            return self._resolve(repo_type, repo_id, rest[0], "/".join(rest[1:]), body)
        if action is None or (action == "revision" and len(rest) == 1):
            return self._info(repo_type, repo_id, rest[0] if rest else "main", body)
        if action == "tree" and rest:
            return self._tree(repo_type, repo_id, rest[0], "/".join(rest[1:]), parse_qs(split.query))
        return self._unhandled()

    def _moved(self, raw: list[str], start: int, end: int, repo_id: str, query: str) -> bool:
        """Answer 307 with the path under the repo's current name when the repo has moved."""
        current = self.hub.repos.moved.get(repo_id)
        if current is None:
            return False
        location = (
            "/" + "/".join([*raw[:start], *current.split("/"), *raw[end:]]) + (f"?{query}" if query else "")
        )
        self._send(307, {"Location": location}, b"", False)
        return True

    # -- the hub's answers --------------------------------------------------------------------

    def _repo_commit(self, repo_type: str, repo_id: str, revision: str) -> tuple[Path, str] | None:
        """The repo's folder and the revision's commit, or None after answering the hub's error."""
        folder = self.hub.repos.folder(repo_type, repo_id)
        if folder is None:
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        commit = self.hub.repos.commit(folder, revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return folder, commit

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, body: bool) -> None:
        found = self._repo_commit(repo_type, repo_id, revision)
        if found is None:
            return
        folder, commit = found
        file = self.hub.repos.file(folder, commit, path)
        if file is None:
            return self._error(404, "EntryNotFound", f'{path} does not exist on "{revision}"', commit)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{file.blob_id}"'}
        if file.lfs:
            headers |= {
                "Location": f"{self.hub.cdn_url}/blobs/{file.sha256}",
                "X-Linked-Etag": f'"{file.sha256}"',
                "X-Linked-Size": str(file.size),
            }
            return self._send(302, headers, b"", False)
        return self._file(file, headers, body)

    def _info(self, repo_type: str, repo_id: str, revision: str, body: bool) -> None:
        """The repo's info at a revision (what `repo_info` reads; transformers resolves the revision to
        its commit with it before downloading)."""
        found = self._repo_commit(repo_type, repo_id, revision)
        if found is None:
            return
        folder, commit = found
        info = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "sha": commit,
            "private": False,
            "gated": False,
            "disabled": False,
            "lastModified": LAST_MODIFIED,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": [{"rfilename": path} for path in self.hub.repos.paths(folder, commit)],
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)

    def _blob(self, sha256: str, body: bool) -> None:
        file = self.hub.repos.by_sha256(sha256)
        if file is None:
            return self._send(404, {"Content-Type": "text/plain"}, b"NoSuchKey\n", body)
        name = quote(Path(file.path).name)
        headers = {"ETag": f'"{file.sha256}"', "Content-Disposition": f"inline; filename*=UTF-8''{name}"}
        return self._file(file, headers, body, interruptible=True)

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, query: dict) -> None:
        """One page of the listing of `path` (the repo's root when empty), files and folders sorted by
        path; `recursive=true` lists every level below."""
        found = self._repo_commit(repo_type, repo_id, revision)
        if found is None:
            return
        folder, commit = found
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{path}/" if path else ""
        below = [p for p in self.hub.repos.paths(folder, commit) if p.startswith(prefix)]
        if path and not below:
            return self._error(404, "EntryNotFound", f'{path} does not exist on "{revision}"', commit)
        entries: dict[str, dict] = {}
        for name in below:
            parts = name[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for level in range(1, min(depth, len(parts) - 1) + 1):  # the folders on the way
                folder_path = prefix + "/".join(parts[:level])
                oid = hashlib.sha1(folder_path.encode()).hexdigest()  # a stand-in tree id
                entries.setdefault(
                    folder_path, {"type": "directory", "oid": oid, "size": 0, "path": folder_path}
                )
            if recursive or len(parts) == 1:
                file = self.hub.repos.file(folder, commit, name)
                assert file is not None
                entry = {"type": "file", "oid": file.blob_id, "size": file.size, "path": name}
                if file.lfs:
                    pointer = len(lfs_pointer(file.sha256, file.size))
                    entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": pointer}
                entries[name] = entry
        listing = [entries[key] for key in sorted(entries)]
        start = int(query.get("cursor", ["0"])[0])
        page = listing[start : start + self.hub.page_size]
        headers = {"Content-Type": "application/json"}
        if start + self.hub.page_size < len(listing):
            split = urlsplit(self.path)
            host = f"{self.hub.scheme}://{self.headers.get('Host')}"
            nxt = f"{host}{split.path}?recursive={str(recursive).lower()}"
            headers["Link"] = f'<{nxt}&cursor={start + self.hub.page_size}>; rel="next"'
        self._send(200, headers, json.dumps(page).encode(), True)

    # -- writing answers ----------------------------------------------------------------------

    def _file(self, file: RepoFile, headers: dict[str, str], body: bool, interruptible: bool = False) -> None:
        """The file's bytes, or the one byte range asked for (206); 416 for a range past the end."""
        start, end = 0, file.size - 1
        asked = self.headers.get("Range")
        status = 200
        if asked:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked.strip())
            if match is None or int(match[1]) >= file.size:
                return self._send(416, {"Content-Range": f"bytes */{file.size}"}, b"", body)
            start, end = int(match[1]), min(int(match[2]) if match[2] else end, end)
            status = 206
            headers = headers | {"Content-Range": f"bytes {start}-{end}/{file.size}"}
        length = end - start + 1
        headers = headers | {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
        }
        self._head(status, headers)
        if not body:
            return
        interrupt = self.hub.take_interrupt() if interruptible else None
        sent = 0
        with file.local.open("rb") as handle:
            handle.seek(start)
            while sent < length:
                block = handle.read(min(CHUNK, length - sent))
                if interrupt is not None and sent + len(block) >= interrupt[0]:
                    self.wfile.write(block[: max(interrupt[0] - sent, 0)])
                    self.wfile.flush()
                    return self._interrupted(file, interrupt[1])
                self.wfile.write(block)
                sent += len(block)

    def _interrupted(self, file: RepoFile, how: str) -> None:
        self.close_connection = True
        if how == "stall":
            if self.hub.on_stall is not None:
                self.hub.on_stall(file.path)
            self.hub.stopped.wait()  # until the server is stopped (or its process killed)
        # "drop": returning with close_connection closes the socket mid-body

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        if commit is not None:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, json.dumps({"error": message}).encode(), True)

    def _unhandled(self) -> None:
        self.hub.record(Served(self.server.origin, self.command, self.path, 404, None, handled=False))  # type: ignore[attr-defined]
        self._send(404, {"Content-Type": "text/plain"}, b"not a path this stand-in hub serves\n", True, False)

    def _send(
        self, status: int, headers: dict[str, str], content: bytes, body: bool, record: bool = True
    ) -> None:
        self._head(status, headers | {"Content-Length": str(len(content))}, record)
        if body and self.command != "HEAD":
            self.wfile.write(content)

    def _head(self, status: int, headers: dict[str, str], record: bool = True) -> None:
        if record:
            origin = self.server.origin  # type: ignore[attr-defined]
            self.hub.record(Served(origin, self.command, self.path, status, self.headers.get("Range")))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m transcoder_lab.standins.hub_server",
        description="Serve the repos of a Hugging Face cache folder (e.g. one `python -m "
        "transcoder_lab.standins.gpt2` filled) on 127.0.0.1 in the hub's protocol; point HF_ENDPOINT at it.",
    )
    parser.add_argument("hf_home", type=Path, help="the HF_HOME whose hub/ folder holds the repos")
    parser.add_argument("--moved", action="append", default=[], metavar="OLD=NEW", help="a renamed repo")
    parser.add_argument("--hub-host", default=LOOPBACK, help="the host name the hub's URLs use")
    parser.add_argument("--cdn-host", default=LOOPBACK, help="the host name the CDN's URLs use")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="seconds before it stops by itself")
    parser.add_argument("--stall-after-bytes", type=int, default=None, help="test hook: stall a CDN body")
    args = parser.parse_args(argv)

    def announce(path: str) -> None:
        print(f"stalled {path}", flush=True)

    server = HubServer(
        Path(args.hf_home) / "hub",
        moved=dict(item.split("=", 1) for item in args.moved),
        hub_host=args.hub_host,
        cdn_host=args.cdn_host,
        interrupt_after_bytes=args.stall_after_bytes,
        interrupt="stall",
        on_stall=announce,
    )
    with server:
        print(f"serving {server.url} (CDN {server.cdn_url})", flush=True)
        try:
            time.sleep(args.lifetime)
        except KeyboardInterrupt:
            pass
    print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
