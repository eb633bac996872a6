"""circuit-tracer's attribution-graph viewer and the JavaScript libraries it loads, pinned and
installed offline (circuit-tracer 0.5.0; `fetch`, run by `make frontend`).

circuit-tracer itself is never imported (it cannot be installed beside our pinned stack): only its
static files are reused, as downloaded. `pip download circuit-tracer==0.5.0 --no-deps` (the wheel)
and `npm pack` of the JavaScript libraries its index.html loads from CDNs (d3, d3-jetpack with the
d3-collection it needs, dagre, pako, at the pinned versions of `NPM_PACKAGES`) into a temporary
folder; `install` checks the wheel's SHA-256 and each tarball's npm integrity (sha512) against the
pins, copies the wheel's `circuit_tracer/frontend/assets/` and one file of each tarball (jetpack's
wrapped for the page by `_jetpack_script`) into a staging folder, and renames it into place
(`.cache/frontend/`, git-ignored): complete or absent, never half there. `CDN_ROUTES` maps each
script address of the viewer's HTML to its local copy, which the server (`server`) answers.

The Makefile refetches when this module changes, so the pins and the fetch live here alone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from transcoder_lab import io
from transcoder_lab.config import REPO_ROOT

# -- pins -------------------------------------------------------------------------------------------

CIRCUIT_TRACER = "circuit-tracer==0.5.0"
CIRCUIT_TRACER_WHEEL = "circuit_tracer-0.5.0-py3-none-any.whl"
CIRCUIT_TRACER_SHA256 = "e457e6558e1c9eb0d3d7c54ce2298492b4e919a4f7f2b8b7e217427284fdc802"
WHEEL_ASSETS = "circuit_tracer/frontend/assets/"
# name -> (version, file inside the tarball's package/ folder, npm integrity of the tarball)
NPM_PACKAGES: dict[str, tuple[str, str, str]] = {
    "d3": ("7.9.0", "dist/d3.min.js",
           "sha512-e1U46jVP+w7Iut8Jt8ri1YsPOvFpg46k+K8TpCb0P+zjCkjkPnV7WzfDJzMHy1LnA+wj5pLT1wjO901gLXeEhA=="),
    "d3-jetpack": ("2.3.0", "build/d3-jetpack.cjs",
                   "sha512-P6cgpLIKudalA5sohATXeZ78fHWcmXbAyPXYNIvxi8lc6qjRaNMggx1O/tcdIBTyTM26pTMpHPJI0N1FhPIzTg=="),
    # d3-jetpack's nestBy uses d3-collection's nest, which d3 v7 no longer has
    "d3-collection": ("1.0.7", "dist/d3-collection.min.js",
                      "sha512-ii0/r5f4sjKNTfh84Di+DpztYwqKhEyUlKoPrzUFfeSkWxjW49xU2QzO9qrPrNkpdI0XJkfzvmTu8V2Zylln6A=="),
    "dagre": ("0.8.5", "dist/dagre.min.js",
              "sha512-/aTqmnRta7x7MCCpExk7HQL2O4owCT2h8NT//9I1OQ9vt29Pa0BzSAkR5lwFUcQ7491yVi/3CXU9jQ5o0Mn2Sw=="),
    "pako": ("2.1.0", "dist/pako.min.js",
             "sha512-w+eufiZ1WuJYgPXbV/PO3NCMEc3xqylkKHzp8bxp1uW4qaSNQUkwmLLEc3kKsfz8lpV1F8Ht3U1Cm+9Srog2ug=="),
}  # fmt: skip
_LIB = "https://transformer-circuits.pub/2025/attribution-graphs/static_js/lib/"
# every script address the viewer's HTML loads -> the file under /vendor/ that answers it
CDN_ROUTES: dict[str, str] = {
    _LIB + "hotserver-client-ws.js": "hotserver-client-ws.js",  # stub: a dev server's live reload
    _LIB + "d3.js": "d3.min.js",
    _LIB + "jetpack_2024-07-20.js": "d3-jetpack.js",  # made by `_jetpack_script`
    _LIB + "npy_v0.js": "npy_v0.js",  # stub: reads .npy files, which graph pages never load
    "https://unpkg.com/dagre@0.8.5/dist/dagre.min.js": "dagre.min.js",
    "https://unpkg.com/pako@2.1.0/dist/pako.min.js": "pako.min.js",
}
STUBS = {
    "hotserver-client-ws.js": "/* offline: no live-reload server to connect to */\n",
    "npy_v0.js": "/* offline: attribution graph pages never read .npy files */\n",
}
DEFAULT_ASSETS = REPO_ROOT / ".cache" / "frontend"
MANIFEST = "manifest.json"  # written last into an installed folder; the Makefile's target


class FrontendError(Exception):
    """A download that does not match its pin, an asset folder that is missing, a bad name (the
    error of every module of this package but `export`)."""


# -- set-up --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npm_integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(dest: str | Path = DEFAULT_ASSETS) -> Path:
    """Download the wheel (pip) and the npm tarballs (npm pack) into a temporary folder, then
    `install` them into `dest` (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="frontend-") as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
        _run([*pip, CIRCUIT_TRACER, "-d", tmp], f"pip could not download {CIRCUIT_TRACER}'s wheel")
        specs = [f"{name}@{version}" for name, (version, _, _) in NPM_PACKAGES.items()]
        npm = shutil.which("npm")
        if npm is None:
            raise FrontendError(
                "npm is not installed (Debian: apt-get install nodejs npm); it fetches " + " ".join(specs)
            )
        _run([npm, "pack", "--silent", *specs], f"npm pack could not fetch {' '.join(specs)}", cwd=tmp)
        return install(tmp, dest)


def _run(command: list[str], failure: str, cwd: str | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FrontendError(f"{failure}: {(done.stderr or done.stdout).strip()[-2000:]}")


def install(downloads: str | Path, dest: str | Path = DEFAULT_ASSETS) -> Path:
    """Check the downloads against the pins and lay out `dest` (module docstring):
    `circuit_tracer/` (the wheel's front-end assets), `vendor/` (one file per npm package) and
    `manifest.json`, written last."""
    downloads, dest = Path(downloads), Path(dest)
    wheel = downloads / CIRCUIT_TRACER_WHEEL
    if not wheel.is_file():
        raise FrontendError(f"{wheel} is missing; `pip download {CIRCUIT_TRACER} --no-deps` makes it")
    if (digest := _sha256(wheel)) != CIRCUIT_TRACER_SHA256:
        raise FrontendError(f"{wheel} has SHA-256 {digest}, not the pinned {CIRCUIT_TRACER_SHA256}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.staging-"))
    staging.chmod(0o755)  # mkdtemp makes it private; the assets are public files
    try:
        _copy_wheel_assets(wheel, staging / "circuit_tracer")
        vendor = staging / "vendor"
        vendor.mkdir()
        files = {name: _npm_file(downloads, name) for name in NPM_PACKAGES}
        for name in ("d3", "dagre", "pako"):
            (vendor / Path(NPM_PACKAGES[name][1]).name).write_bytes(files[name])
        jetpack = _jetpack_script(files["d3-collection"].decode("utf-8"), files["d3-jetpack"].decode("utf-8"))
        (vendor / "d3-jetpack.js").write_text(jetpack)
        for name, text in STUBS.items():
            (vendor / name).write_text(text)
        index = (staging / "circuit_tracer" / "index.html").read_text()
        unknown = set(re.findall(r"src='(https?://[^']+)'", index)) - CDN_ROUTES.keys()
        if unknown:
            raise FrontendError(f"the viewer loads scripts with no local copy: {sorted(unknown)}")
        manifest = {
            "circuit_tracer": {"requirement": CIRCUIT_TRACER, "sha256": CIRCUIT_TRACER_SHA256},
            "npm": {
                name: {"version": v, "file": f, "integrity": i} for name, (v, f, i) in NPM_PACKAGES.items()
            },
            "cdn_routes": CDN_ROUTES,
        }
        io.write_json(staging / MANIFEST, manifest)
        _replace_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _npm_file(downloads: Path, name: str) -> bytes:
    """The pinned file of npm package `name`, read from its hash-checked tarball."""
    version, member, integrity = NPM_PACKAGES[name]
    tarball = downloads / f"{name}-{version}.tgz"
    if not tarball.is_file():
        raise FrontendError(f"{tarball} is missing; `npm pack {name}@{version}` makes it")
    if (found := _npm_integrity(tarball)) != integrity:
        raise FrontendError(f"{tarball} has integrity {found}, not the pinned {integrity}")
    with tarfile.open(tarball, "r:gz") as archive:
        handle = archive.extractfile(f"package/{member}")
        if handle is None:
            raise FrontendError(f"{tarball} has no regular file package/{member}")
        return handle.read()


def _jetpack_script(collection: str, jetpack: str) -> str:
    """d3-jetpack for a page that already loaded d3 v7, as one classic script.

    Why: the jetpack builds on npm do not work on d3 v7 as they are: `d3v7+jetpack.js` patches
    jetpack's selection helpers (appendMany, at, st, ...) onto a second copy of d3-selection, not
    onto the d3 it exports, and the UMD `d3-jetpack.cjs` replaces `window.d3` with an empty object
    before reading d3 from it. Its CommonJS branch works: it gets `require` and `module` from this
    wrapper, `require` answering d3-collection (for nestBy) and otherwise a snapshot of the page's
    d3 (a snapshot, so jetpack's timer wrappers call d3's timers, not themselves); the helpers then
    patch d3's own selection prototype, and jetpack's exports are added to `window.d3`. One gap
    is filled: the viewer was written against a later jetpack build whose `conventions` objects
    also have `drawAxis(svg)` (jetpack's drawAxis drawn into `svg`, default the object's svg)."""
    return (
        "/* d3-jetpack on the page's d3 v7; see circuits.circuit_tracer.assets._jetpack_script */\n"
        "(function () {\n"
        "  var define;  /* the packages' UMD headers must take their CommonJS branch */\n"
        "  function load(source) {\n"
        "    var module = {exports: {}};\n"
        "    source(module, module.exports);\n"
        "    return module.exports;\n"
        "  }\n"
        "  var d3 = window.d3, snapshot = Object.assign({}, d3);\n"
        "  var collection = load(function (module, exports) {\n" + collection + "\n});\n"
        "  function require(name) { return name === 'd3-collection' ? collection : snapshot; }\n"
        "  var jetpack = load(function (module, exports) {\n" + jetpack + "\n});\n"
        "  var conventions = jetpack.conventions;\n"
        "  jetpack.conventions = function (c) {\n"
        "    c = conventions(c);\n"
        "    c.drawAxis = function (svg) {\n"
        "      return jetpack.drawAxis(Object.assign({}, c, {svg: svg || c.svg}));\n"
        "    };\n"
        "    return c;\n"
        "  };\n"
        "  Object.assign(d3, jetpack);\n"
        "})();\n"
    )


def _copy_wheel_assets(wheel: Path, target: Path) -> None:
    """The wheel's `circuit_tracer/frontend/assets/` files, each name checked to stay inside."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.startswith(WHEEL_ASSETS) and not m.is_dir()]
        if not members:
            raise FrontendError(f"{wheel} has no {WHEEL_ASSETS}")
        for member in members:
            relative = Path(member.filename[len(WHEEL_ASSETS) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise FrontendError(f"{wheel}: refusing the member {member.filename!r}")
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(member))


def _replace_dir(staging: Path, dest: Path) -> None:
    """Rename `staging` to `dest`; a previous `dest` is moved aside first and then removed."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.replace(dest, old / dest.name)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def installed_assets(assets: str | Path = DEFAULT_ASSETS) -> Path:
    """`assets` if `install` completed there, else a FrontendError saying how to set it up."""
    assets = Path(assets)
    if not (assets / MANIFEST).is_file():
        raise FrontendError(f"circuit-tracer's front end is not installed in {assets}; run `make frontend`")
    return assets
