"""The nightly keeps its validation cache (ccci.policy.validated) inside its sandbox: the
state directory is one of the unit's ``ReadWritePaths=``, so the hardened oneshot records the
documents that passed, and the next night, finding them all, writes nothing new.

The nightly is the one ``ccci systemd install`` writes, run by the test host's systemd (see
tests/systemd/test_timers_systemd.py for the fixture and the run helper).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.systemd import SystemdHost
from tests.systemd.test_timers_systemd import STATE_DIR, nightly, run_nightly

if TYPE_CHECKING:
    from conftest import Ccci

__all__ = ["nightly"]  # the fixture, used by name

CACHE = f"{STATE_DIR}/cache/validated.json"


def test_the_sandboxed_nightly_records_its_validated_policies_and_reuses_them(
    host: SystemdHost, nightly: Ccci
) -> None:
    host.exec("rm", "-rf", f"{STATE_DIR}/cache")
    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    first = host.exec("cat", CACHE).stdout
    cached = json.loads(first)
    # The fixture's policies: a gated prune and a TimerPolicy, one rendered document each.
    assert cached["format"] == 1 and len(cached["digests"]) == 2, first
    assert host.exec("stat", "-c", "%a %U %F", CACHE).stdout.strip() == "600 root regular file"
    assert host.exec("stat", "-c", "%a", f"{STATE_DIR}/cache").stdout.strip() == "700"

    props, journal = run_nightly(host)
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), journal
    assert "No changes. Host matches policy." in journal
    assert host.exec("cat", CACHE).stdout == first
