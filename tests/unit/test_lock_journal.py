"""One apply at a time (flock, holder named), and an append-only JSONL journal."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccci.apply.lock import hold
from ccci.errors import CcciError, LockBusy
from ccci.state import journal
from ccci.state.atomic import write_atomic
from ccci.state.journal import Journal

# A second process that takes the lock, says so, and holds it until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ccci.apply.lock import hold

    with hold(Path(sys.argv[1])):
        print("held", flush=True)
        sys.stdin.read()
    """
)


def test_a_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "state" / "ccci.lock"
    with hold(lock), pytest.raises(LockBusy) as caught, hold(lock):
        pytest.fail("two holders at once")
    busy = caught.value
    assert busy.exit_code == 75
    assert isinstance(busy, CcciError)
    assert str(busy).startswith(f"{lock}: another apply holds the lock (pid {os.getpid()} since ")
    assert str(busy).endswith("; try again later")


def test_the_lock_file_names_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "ccci.lock"
    with hold(lock):
        holder = json.loads(lock.read_text(encoding="utf-8"))
    assert holder["pid"] == os.getpid()
    assert holder["command"].startswith("ccci")
    assert holder["since"].endswith("Z")


def test_a_lock_held_by_another_process_is_busy_and_names_that_pid(tmp_path: Path) -> None:
    lock = tmp_path / "ccci.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with pytest.raises(LockBusy) as caught, hold(lock):
            pytest.fail("the lock was taken while another process held it")
        assert f"(pid {child.pid} since " in str(caught.value)
        assert f"(pid {os.getpid()} " not in str(caught.value)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    # The holder has exited; the kernel released its flock.
    with hold(lock):
        assert json.loads(lock.read_text(encoding="utf-8"))["pid"] == os.getpid()


def test_a_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    lock = tmp_path / "ccci.lock"
    with hold(lock):
        pass
    with hold(lock), pytest.raises(LockBusy), hold(lock):
        pass
    with hold(lock):
        pass


def test_a_lock_is_released_when_the_holder_raises(tmp_path: Path) -> None:
    lock = tmp_path / "ccci.lock"
    with pytest.raises(RuntimeError), hold(lock):
        raise RuntimeError("apply failed")
    with hold(lock):
        pass


def test_a_lock_that_cannot_be_created_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(CcciError) as caught, hold(blocker / "ccci.lock"):
        pass
    assert not isinstance(caught.value, LockBusy)
    assert str(caught.value).startswith(f"{blocker / 'ccci.lock'}: cannot open the lock file: ")
    assert "\n" not in str(caught.value)


def test_the_journal_appends_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.jsonl"
    first = Journal(path)
    first.write({"type": "change", "address": "image:sha256:ab", "status": "ok"})
    first.write({"type": "recap", "host": "cc-ci", "changed": 1})
    first.close()
    second = Journal(path)
    second.write({"type": "recap", "host": "cc-ci", "changed": 0, "reason": "ünïcode ≥"})
    second.close()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"type": "change", "address": "image:sha256:ab", "status": "ok"},
        {"type": "recap", "host": "cc-ci", "changed": 1},
        {"type": "recap", "host": "cc-ci", "changed": 0, "reason": "ünïcode ≥"},
    ]
    assert journal.read(path) == [json.loads(line) for line in lines]


def test_reading_the_journal_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    log = Journal(path)
    log.write({"n": 1})
    log.write({"n": 2})
    log.close()
    with path.open("a", encoding="utf-8") as killed:
        killed.write('{"n": 3, "address": "image:sha')
    assert journal.read(path) == [{"n": 1}, {"n": 2}]


def test_reading_a_missing_journal_is_empty(tmp_path: Path) -> None:
    assert journal.read(tmp_path / "never-written.jsonl") == []


def test_the_entry_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with path.open("w", encoding="utf-8") as killed:
        killed.write('{"n": 1}\n{"n": 2, "addr')
    log = Journal(path)
    log.write({"n": 3})
    log.close()
    assert journal.read(path) == [{"n": 1}, {"n": 3}]


# ---- a disk that fills up ----------------------------------------------------------------


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A real write failure, as on a full disk: the kernel takes writes up to ``limit``
    bytes of file size (a short write) and refuses the rest (EFBIG). SIGXFSZ, which would
    kill the process, is ignored meanwhile."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_journal_line_the_disk_takes_only_part_of_is_cut_off_and_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    log = Journal(path)
    log.write({"type": "change", "address": "image:sha256:aa", "status": "ok"})
    whole = path.read_bytes()
    entry = {"type": "change", "address": "stack:redi-3fa9c1_ci_example_org", "status": "ok"}
    try:
        with file_size_limit(len(whole) + 20), pytest.raises(CcciError) as caught:
            log.write({**entry, "reason": "x" * 200})  # 20 bytes of it fit
    finally:
        log.close()

    assert path.read_bytes() == whole  # the fragment was cut off: no torn line
    assert str(caught.value) == (
        f"{path}: cannot write the journal (stack:redi-3fa9c1_ci_example_org ok): "
        "File too large; stopped there"
    )
    again = Journal(path)
    again.write({"n": 2})
    again.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"type": "change", "address": "image:sha256:aa", "status": "ok"},
        {"n": 2},
    ]


def test_a_recap_that_cannot_be_journalled_names_its_host(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    log = Journal(path)
    try:
        with file_size_limit(0), pytest.raises(CcciError) as caught:
            log.write({"type": "recap", "host": "cc-ci", "changed": 3})
    finally:
        log.close()
    assert "cannot write the journal (the recap of cc-ci): File too large" in str(caught.value)
    assert path.read_bytes() == b""


def test_closing_the_journal_twice_is_harmless(tmp_path: Path) -> None:
    log = Journal(tmp_path / "journal.jsonl")
    log.close()
    log.close()


def test_a_lock_whose_holder_cannot_be_written_is_a_one_line_error_and_released(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "ccci.lock"
    with file_size_limit(10), pytest.raises(CcciError) as caught, hold(lock):
        pytest.fail("held a lock that names nobody")
    assert not isinstance(caught.value, LockBusy)
    assert str(caught.value) == f"{lock}: cannot write the lock file: File too large"
    with hold(lock):  # released: the next apply takes it
        assert json.loads(lock.read_text(encoding="utf-8"))["pid"] == os.getpid()


def test_a_file_that_cannot_be_written_atomically_is_a_one_line_error_naming_it(
    tmp_path: Path,
) -> None:
    target = tmp_path / "ccci.prom"
    write_atomic(target, "old\n")
    with file_size_limit(16), pytest.raises(CcciError) as caught:
        write_atomic(target, "ccci_up 1\n" * 10)
    assert str(caught.value) == f"{target}: cannot write: File too large"
    assert isinstance(caught.value, OSError)  # callers that catch OSError still do
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ccci.prom"]
