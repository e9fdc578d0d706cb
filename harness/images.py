"""Offline test images: nothing can be pulled, so images are built from busybox.

Loaded images are hand-written `docker save` tarballs, which lets tests choose an
image's "created" time (for age-based pruning) and size. Every image shares one
busybox base layer (byte-identical tar, so stored once) plus a small unique top
layer holding the marker and optional filler.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from harness.engine import Engine, EngineError

BASE_TAG = "ccci-test/busybox:1"
APPLETS = (
    "sh", "sleep", "cat", "ls", "echo", "true", "false", "touch", "dd", "mkdir", "rm",
    "env", "df", "du", "ps", "head", "grep", "id", "hostname", "test", "wc",
)  # fmt: skip
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CMD = ["sleep", "3600"]
MARKER_PATH = "ccci-marker"
FILLER_PATH = "ccci-filler"
_MTIME = 946684800  # fixed so the base layer is byte-identical every time (shared diff_id)


def _busybox() -> str:
    for path in ("/usr/bin/busybox", "/bin/busybox"):
        if os.path.exists(path):
            return path
    found = shutil.which("busybox")
    if not found:
        raise EngineError("busybox not found; `python3 -m harness start` installs busybox-static")
    return found


def _add(
    tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, _MTIME, link
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


@functools.lru_cache(maxsize=1)
def base_layer() -> bytes:
    """Rootfs tar: /bin/busybox, applet symlinks and the usual empty dirs."""
    with open(_busybox(), "rb") as fh:
        binary = fh.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "root", "var", "usr", "usr/bin"):
            _add(tar, d, tarfile.DIRTYPE, 0o755)
        _add(tar, "tmp", tarfile.DIRTYPE, 0o1777)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, binary)
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
    return buf.getvalue()


def _image_exists(engine: Engine, ref: str) -> bool:
    return (
        engine.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False).returncode == 0
    )


def image_id(engine: Engine, ref: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def _tmpdir(engine: Engine) -> str:
    path = os.path.join(engine.state_dir, "tmp")
    os.makedirs(path, exist_ok=True)
    return path


def ensure_busybox_image(engine: Engine, tag: str = BASE_TAG) -> str:
    """`docker import` the busybox rootfs once; returns the image id."""
    if not _image_exists(engine, tag):
        with tempfile.NamedTemporaryFile(dir=_tmpdir(engine), suffix=".tar") as fh:
            fh.write(base_layer())
            fh.flush()
            engine.docker(
                "import",
                "--change",
                f"ENV {PATH_ENV}",
                "--change",
                f"CMD {json.dumps(CMD)}",
                fh.name,
                tag,
            )
    return image_id(engine, tag)


def _rfc3339(created: datetime) -> str:
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_top_layer(path: str, layer_bytes: int, marker: str) -> str:
    """Unique top layer (marker + random filler); returns its sha256 hex."""
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MARKER_PATH, tarfile.REGTYPE, 0o644, (marker or uuid.uuid4().hex).encode())
        if layer_bytes > 0:
            info = tarfile.TarInfo(FILLER_PATH)
            info.size, info.mode, info.mtime = layer_bytes, 0o644, _MTIME
            tar.addfile(info, _RandomReader(layer_bytes))
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _RandomReader(io.RawIOBase):
    """Streams n random bytes so big fillers never sit in memory (and never dedupe)."""

    def __init__(self, n: int) -> None:
        self._left = n

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        self._left -= size
        return os.urandom(size)


def _with_tag(ref: str) -> str:
    # docker load rejects a bare repository name; `docker pull` semantics imply :latest
    return ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"


def load_image(
    engine: Engine, repo_tag: str | None, created: datetime, layer_bytes: int = 0, marker: str = ""
) -> str:
    """`docker load` a synthetic image with the given created time; returns its id.

    repo_tag None leaves the image untagged, i.e. dangling (<none>:<none>).
    A unique marker (random when empty) gives every call a distinct image id.
    """
    base = base_layer()
    base_hex = hashlib.sha256(base).hexdigest()
    stamp = _rfc3339(created)
    with tempfile.TemporaryDirectory(dir=_tmpdir(engine)) as tmp:
        top_path = os.path.join(tmp, "top.tar")
        top_hex = _write_top_layer(top_path, layer_bytes, marker)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": stamp,
                "config": {"Env": [PATH_ENV], "Cmd": CMD},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{base_hex}", f"sha256:{top_hex}"],
                },
                "history": [
                    {"created": stamp, "created_by": "ccci-test busybox base"},
                    {"created": stamp, "created_by": f"ccci-test layer {layer_bytes}B"},
                ],
            },
            sort_keys=True,
        ).encode()
        config_hex = hashlib.sha256(config).hexdigest()
        manifest = [
            {
                "Config": f"{config_hex}.json",
                "RepoTags": [_with_tag(repo_tag)] if repo_tag else None,
                "Layers": [f"{base_hex}/layer.tar", f"{top_hex}/layer.tar"],
            }
        ]
        archive = os.path.join(tmp, "image.tar")
        with tarfile.open(archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, f"{config_hex}.json", tarfile.REGTYPE, 0o644, config)
            _add(tar, f"{base_hex}/layer.tar", tarfile.REGTYPE, 0o644, base)
            tar.add(top_path, arcname=f"{top_hex}/layer.tar")
            _add(tar, "manifest.json", tarfile.REGTYPE, 0o644, json.dumps(manifest).encode())
        engine.docker("load", "-q", "-i", archive)
    return f"sha256:{config_hex}"


def make_dangling_image(
    engine: Engine, created: datetime, size_bytes: int = 0, marker: str = ""
) -> str:
    """An untagged (<none>:<none>) image with the given created time; returns its id."""
    return load_image(engine, None, created, layer_bytes=size_bytes, marker=marker)


# ---- BuildKit ----------------------------------------------------------------------------

# The Debian 20.10 client: it builds with BuildKit without buildx (the newer client lacks it).
BUILDKIT_DOCKER = "/usr/bin/docker"


def buildkit_build(engine: Engine, context: Path, tag: str | None) -> str:
    """``docker build`` with BuildKit of ``FROM scratch`` + one file; returns the image id.

    It leaves ``source.local`` build-cache records that no image shares (dangling) and a
    ``regular`` record that the built image shares (none when the image is untagged and
    removed later).
    """
    if not os.access(BUILDKIT_DOCKER, os.X_OK):
        raise EngineError(f"{BUILDKIT_DOCKER} (Debian docker.io client) is needed for BuildKit")
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY f.txt /f.txt\n", encoding="utf-8")
    (context / "f.txt").write_text(uuid.uuid4().hex, encoding="utf-8")
    tagging = ["--tag", tag] if tag else []
    done = subprocess.run(
        [BUILDKIT_DOCKER, "build", "--quiet", *tagging, str(context)],
        env={**engine.env(), "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise EngineError(f"docker build (BuildKit) failed: {done.stderr.strip()}")
    return done.stdout.strip()
