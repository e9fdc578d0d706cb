"""The janitor on the private engine, through the real CLI, with a policy set of more kinds
than it uses: once the state directory knows the documents passed it builds only its own,
and a broken document of a kind it does not use still stops it before it reaps anything,
with the error ``reconcile`` gives (ccci.policy.load, the state directory's built.json).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ccci_cli import stamp
from enginekit import (
    OLD,
    JanitorCli,
    ahead,
    changes,
    full_stack,
    journal_changes,
    on_engine,
    seed_run_app,
)

from harness.engine import Engine

pytestmark = pytest.mark.engine

TIMERS = """\
apiVersion: ccci/v1
kind: TimerPolicy
metadata: {name: schedules}
hosts: ci
spec:
  unit_dir: /etc/systemd/system
  present:
    - name: ccci-reconcile
      on_calendar: daily
      exec: /usr/local/bin/ccci reconcile --apply --yes
      hardening: true
      runs_ccci: true
  absent:
    - docker-prune.timer
"""
# systemd's own names are refused by the TimerPolicy builder (after the schema passed).
BROKEN_TIMERS = TIMERS.replace("name: ccci-reconcile", "name: docker")
RETENTION = """\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
hosts: ci
spec:
  retain: ['redis:7-alpine']
"""


@pytest.fixture
def ccci(clean_engine: Engine, tmp_path: Path) -> JanitorCli:
    """The janitor's policies beside a TimerPolicy and an ImageRetention it does not use."""
    cli = JanitorCli(clean_engine, tmp_path)
    cli.write_inventory()
    cli.write_policies()
    cli.write_policy("timers", TIMERS)
    cli.write_policy("retention", RETENTION)
    # As on a host that applied before: a plan never creates the state directory.
    cli.state_dir.mkdir()
    return cli


def test_a_broken_policy_of_a_kind_the_janitor_does_not_use_stops_it_before_any_reap(
    ccci: JanitorCli,
) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    later = ahead()
    # The first plan builds every document and records the pass; the second builds only
    # the janitor's kinds, and plans the same reap.
    first = changes(ccci.janitor_plan(later))
    assert (ccci.state_dir / "cache" / "built.json").is_file()
    assert changes(ccci.janitor_plan(later)) == first
    assert list(first) == [f"stack:{OLD}"]

    ccci.write_policy("timers", BROKEN_TIMERS)
    reconcile = ccci.run("reconcile", "--apply", "--yes", "--now", stamp(later), expect=(1,))
    assert reconcile.stderr.startswith(f"ccci: {ccci.policies / 'timers.yaml'}:")
    assert "would replace docker.service" in reconcile.stderr
    for _ in range(2):
        done = ccci.run("janitor", "--now", stamp(later), expect=(1,))
        assert (done.stdout, done.stderr) == ("", reconcile.stderr)
        assert full_stack(OLD, env_file) <= on_engine(engine, OLD, env_file)
    assert journal_changes(ccci.journal()) == []

    # Fixed, the janitor reaps the orphan as it planned to.
    ccci.write_policy("timers", TIMERS)
    applied = ccci.run("janitor", "--now", stamp(later))
    assert "cc-ci: converged" in applied.stdout
    assert on_engine(engine, OLD, env_file) == set()
