"""An atomic write's temporary file is new and its own: a name already taken, even by a
symlink aimed elsewhere, is passed over, never written through, and nothing is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ccci.state import atomic
from ccci.state.atomic import write_atomic


def test_a_taken_temporary_name_is_passed_over_and_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "last-use-cc-ci.json"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep\n", encoding="utf-8")
    taken = tmp_path / f".{target.name}.{'ab' * 6}"
    taken.symlink_to(elsewhere)
    draws = iter([bytes.fromhex("ab" * 6), bytes.fromhex("cd" * 6)])
    monkeypatch.setattr("ccci.state.atomic.os.urandom", lambda n: next(draws))
    write_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert elsewhere.read_text(encoding="utf-8") == "keep\n"
    assert taken.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, elsewhere.name, taken.name]
    )


def test_the_file_gets_the_mode_asked_for_and_the_temporary_is_gone(tmp_path: Path) -> None:
    target = tmp_path / "state" / "ccci.prom"
    write_atomic(target, "ccci_up 1\n", mode=0o640)
    assert target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(target.parent) == ["ccci.prom"]


def test_when_every_name_is_taken_the_write_fails_in_one_line_and_leaves_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ccci.prom"
    write_atomic(target, "old\n")
    (tmp_path / f".{target.name}.{'00' * 6}").write_text("", encoding="utf-8")
    monkeypatch.setattr("ccci.state.atomic.os.urandom", lambda n: bytes(n))
    with pytest.raises(atomic.WriteFailed) as caught:
        write_atomic(target, "new\n")
    assert str(caught.value) == f"{target}: cannot write: no unused temporary name"
    assert target.read_text(encoding="utf-8") == "old\n"
