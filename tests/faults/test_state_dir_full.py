"""A full state directory: a tiny real tmpfs as ``--state-dir`` (harness/disk.py), filled
with real bytes. ccci must say so in one line, act on nothing it cannot journal, never leave
a torn journal line, and converge on the first run once there is room again.

The proxy (harness/faultproxy.py) only says *when* the disk fills in the middle of an
apply: it holds the first removal back while the test fills the filesystem, then forwards
it unchanged to the real engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import DAY, addresses, image_ids, journal_changes, now, recaps
from faultkit import Ccci, one_line_error

from harness.disk import disk_path, fill_to, small_filesystem, unmount
from harness.faultproxy import FaultProxy, Request
from harness.images import make_dangling_image

pytestmark = pytest.mark.engine

STATE_MB = 1
PAGE = 4096  # tmpfs hands out whole pages: a write that needs a new one finds none


@pytest.fixture
def small_state(ccci: Ccci) -> Iterator[Path]:
    """A 1 MiB tmpfs as the CLI's state directory, empty."""
    path = Path(small_filesystem(disk_path("ccci-fault-state"), STATE_MB))
    for leftover in path.iterdir():
        leftover.unlink()
    ccci.state = path
    yield path
    unmount(str(path))


def test_an_apply_into_a_full_state_dir_is_one_line_and_acts_on_nothing(
    ccci: Ccci, small_state: Path
) -> None:
    engine = ccci.engine
    ccci.run("reconcile", "--apply", "--yes", expect=(0,))  # a journal and a lock already there
    history = ccci.whole_journal()
    images = [make_dangling_image(engine, now() - (3 + n) * DAY) for n in range(2)]
    fill_to(str(small_state), 100)

    full = ccci.run("reconcile", "--apply", "--yes", expect=(1,))

    error = one_line_error(full.stderr)
    assert error.startswith(f"ccci: {ccci.journal_path}: no room for the journal ("), error
    assert error.endswith("65536 needed); nothing was applied"), error
    assert set(images) <= image_ids(engine)
    assert ccci.whole_journal() == history
    assert not [p.name for p in small_state.iterdir() if p.name.startswith(".ccci.prom")]

    fill_to(str(small_state), 0)
    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))

    assert "cc-ci: converged" in again.stdout
    assert image_ids(engine).isdisjoint(images)
    assert recaps(ccci.whole_journal())[-1]["converged"] is True


def test_a_disk_that_fills_mid_apply_stops_it_without_a_torn_journal_line(
    ccci: Ccci, small_state: Path, proxy: FaultProxy
) -> None:
    engine = ccci.engine
    ccci.run("reconcile", "--apply", "--yes", expect=(0,))
    images = [make_dangling_image(engine, now() - (3 + n) * DAY) for n in range(3)]
    planned = addresses(ccci.plan())
    assert planned == {f"image:{i}" for i in images}
    # Place the journal's end 10 bytes before a page boundary, so that the next line finds
    # room for its first 10 bytes only: the torn write a full disk makes.
    size = ccci.journal_path.stat().st_size
    missing = PAGE - 10 - size % PAGE
    pad = {"type": "padding", "pad": ""}
    pad["pad"] = "x" * (missing - len(json.dumps(pad, sort_keys=True)) - 1)
    with ccci.journal_path.open("a", encoding="utf-8") as journal:
        journal.write(json.dumps(pad, sort_keys=True) + "\n")
    assert ccci.journal_path.stat().st_size % PAGE == PAGE - 10
    before = ccci.journal_path.read_bytes()
    filled: list[float] = []

    def fill_the_disk(request: Request) -> None:
        filled.append(fill_to(str(small_state), 100))

    proxy.before("DELETE", r"/images/sha256:[0-9a-f]{64}", fill_the_disk)

    stopped = ccci.run("reconcile", "--apply", "--yes", expect=(1,))

    assert filled == [100.0], "the disk never filled mid-apply"
    error = one_line_error(stopped.stderr)
    assert error.startswith(f"ccci: {ccci.journal_path}: cannot write the journal (image:sha256:")
    assert error.endswith(" ok): No space left on device; stopped there"), error
    assert ccci.journal_path.read_bytes() == before  # the 10 bytes that fitted were cut off
    ccci.whole_journal()  # every line parses
    # It stopped at the change it could not record: one image removed, two left.
    assert len(set(images) & image_ids(engine)) == 2

    fill_to(str(small_state), 0)
    again = ccci.run("reconcile", "--apply", "--yes", expect=(0,))

    assert "cc-ci: converged" in again.stdout
    assert image_ids(engine).isdisjoint(images)
    entries = ccci.whole_journal()
    assert len(journal_changes(entries)) == 2
    assert recaps(entries)[-1]["converged"] is True
