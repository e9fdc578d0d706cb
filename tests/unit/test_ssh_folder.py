"""Where an SSH host's control and forwarded sockets live: a folder whose paths fit a unix
socket, whatever ``TMPDIR`` is (a deep one made every host unreachable)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccci.connectors.ssh import SOCKET_PATH_MAX, private_folder


@pytest.fixture
def temp_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    return tmp_path


@pytest.fixture
def deep_tmpdir(temp_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TMPDIR so deep that a socket's path under it would not fit."""
    deep = temp_root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    return deep


@contextlib.contextmanager
def made_folder() -> Iterator[Path]:
    """The folder private_folder() makes, removed once the test has looked at it (removing
    it is the caller's job, as the connector does when its SSH master ends)."""
    folder = private_folder()
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder)


def test_the_folder_is_under_tmpdir_when_its_sockets_fit(
    temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = temp_root / "t"
    short.mkdir()
    monkeypatch.setenv("TMPDIR", str(short))

    with made_folder() as folder:
        assert folder.parent == short
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_a_tmpdir_too_deep_for_a_socket_gives_way_to_the_runtime_dir(
    temp_root: Path, deep_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = temp_root / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))

    with made_folder() as folder:
        assert folder.parent == runtime
        assert len(os.path.join(folder, "docker.sock").encode()) <= SOCKET_PATH_MAX
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_without_a_runtime_dir_the_folder_goes_to_tmp(
    deep_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)

    with made_folder() as folder:
        assert folder.parent == Path("/tmp")
        assert len(os.path.join(folder, "docker.sock").encode()) <= SOCKET_PATH_MAX
