"""The orphan-stack janitor proven on the private engine, through the real CLI.

Every stack here is deployed for real with ``docker stack deploy``: a service writing into
a named volume, a labelled config, a stack network, abra's external secrets (created the
way abra names them, ``<stack>_<name>_v1``, unlabelled) and abra's env file in a temporary
``abra_dir``. What is left on the engine is read with the docker CLI, independently of ccci.

Ages: a stack cannot be backdated on a real engine, so a stack is made old either by
planning with ``--now`` four hours ahead (the policy's ``orphan_after`` is 3h) or by
stamping a deadline label (``ci.expires``, a unix time) that has already passed.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccci_cli import stamp
from enginekit import (
    DAY,
    OLD,
    RUN_APP_MATCH,
    SECRETS,
    YOUNG,
    JanitorCli,
    ahead,
    changes,
    full_stack,
    gates,
    journal_changes,
    mountpoint,
    names,
    noops,
    now,
    on_engine,
    recaps,
    seed_run_app,
    sleeper,
    stack_containers,
    task_states,
    wait_until,
)

from ccci.apply.lock import hold
from harness.engine import Engine
from harness.images import BASE_TAG, make_dangling_image
from harness.swarm import deploy_stack

pytestmark = pytest.mark.engine

KEPT = "demo-0a1b2c_ci_example_org"
CONVERGING = "post-8d2e4f_ci_example_org"
PAST_DEADLINE = "wiki-77aa01_ci_example_org"
NOT_A_RUN_APP = "traefik"


# ---- the CLI, as a user runs it -----------------------------------------------------------


Ccci = JanitorCli  # the janitor's workspace, by the name every test here gives it


@pytest.fixture
def ccci(clean_engine: Engine, tmp_path: Path) -> Ccci:
    """The real CLI against a freshly reset engine, with the orphan policy only."""
    cli = Ccci(clean_engine, tmp_path)
    cli.write_inventory()
    cli.write_policies()
    return cli


# ---- stacks that are not run-apps, and what residual prints -------------------------------


def proxy_compose() -> str:
    # A deadline long past: still not a run-app.
    return sleeper(deploy="{labels: {ci.expires: '1'}}")


def residual_lines(stdout: str) -> set[tuple[str, str]]:
    """``kind<TAB>name`` lines, as ``ccci residual`` prints each leftover."""
    found = set()
    for line in stdout.splitlines():
        kind, tab, name = line.partition("\t")
        assert tab, f"not a kind<TAB>name line: {line!r}"
        found.add((kind, name))
    return found


# ---- reading plans ---------------------------------------------------------------------------


def reap_before(
    stack: str, env_file: Path, secrets: tuple[str, ...] = SECRETS
) -> dict[str, list[str]]:
    """The plan's ``before`` for a full run-app: every object, by kind, in reap order."""
    return {
        "services": [f"{stack}_app"],
        "secrets": sorted(f"{stack}_{s}_v1" for s in secrets),
        "configs": [f"{stack}_app_conf"],
        "networks": [f"{stack}_backend"],
        "volumes": [f"{stack}_data"],
        "env_file": [str(env_file)],
    }


def sorted_before(change: dict[str, Any]) -> dict[str, list[str]]:
    return {kind: sorted(names) for kind, names in change["before"].items()}


# ---- a. an old run-app is reaped completely ----------------------------------------------


@pytest.mark.parametrize(
    "command", [("reconcile", "--apply", "--yes"), ("janitor",)], ids=["reconcile", "janitor"]
)
def test_an_old_run_app_is_reaped_completely_and_residual_proves_it(
    ccci: Ccci, command: tuple[str, ...]
) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    later = ahead()
    present = on_engine(engine, OLD, env_file)
    assert full_stack(OLD, env_file) <= present
    assert any(kind == "container" for kind, _ in present)

    # Before the reap: residual lists each leftover as kind<TAB>name and exits 1.
    before = ccci.residual(OLD, expect=(1,))
    assert residual_lines(before.stdout) == present
    assert "is left" not in before.stdout

    plan = ccci.janitor_plan(later)
    [reap] = changes(plan).values()
    assert reap["address"] == f"stack:{OLD}"
    assert reap["action"] == "delete"
    assert reap["label"] == "1 service, 2 secrets, 1 config, 1 network, 1 volume, 1 env file"
    assert sorted_before(reap) == reap_before(OLD, env_file)
    assert re.fullmatch(r"run-app, newest object 4 hours old ≥ 3h", reap["reason"]), reap["reason"]

    applied = ccci.run(*command, "--now", stamp(later))

    assert f"cc-ci: - stack {OLD} (" in applied.stdout
    assert "cc-ci: converged" in applied.stdout
    assert "cc-ci : ok=1 changed=1 failed=0 skipped=0" in applied.stdout
    assert on_engine(engine, OLD, env_file) == set()
    [line] = journal_changes(ccci.journal())
    assert (line["address"], line["status"], line["message"]) == (f"stack:{OLD}", "ok", "done")
    [recap] = recaps(ccci.journal())
    assert (recap["changed"], recap["failed"], recap["converged"]) == (1, 0, True)

    after = ccci.residual(OLD, expect=(0,))
    assert after.stdout.strip() == f"Nothing of {OLD} is left."
    # And a second janitor run has nothing to do.
    again = ccci.run("janitor", "--now", stamp(later))
    assert again.stdout.splitlines()[0] == "No changes. Host matches policy."


# ---- b. what is not an orphan stays, each with its reason ---------------------------------


def test_young_kept_foreign_and_converging_stacks_are_left_each_with_its_reason(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    past = int(now().timestamp()) - 600
    # Each of these would be reaped on its deadline alone, but for the one thing it shows.
    seed_run_app(ccci, KEPT, expires=past, secrets=())
    # Converging and young: its deploy may be in flight. (Past its deadline it would be
    # reaped although it converges: a stuck deploy is not a run.)
    seed_run_app(ccci, CONVERGING, secrets=(), pending=True)
    deploy_stack(engine, NOT_A_RUN_APP, proxy_compose())
    seed_run_app(ccci, YOUNG, secrets=())  # no deadline, deployed seconds ago
    seed_run_app(ccci, PAST_DEADLINE, expires=past, secrets=())  # the control: reaped
    left_alone = (KEPT, CONVERGING, NOT_A_RUN_APP, YOUNG)
    before = {s: on_engine(engine, s, ccci.env_file(s)) for s in left_alone}

    plan = ccci.janitor_plan()  # the real clock

    assert set(changes(plan)) == {f"stack:{PAST_DEADLINE}"}
    reasons = noops(plan)
    assert set(reasons) == {f"stack:{s}" for s in left_alone}
    assert reasons[f"stack:{KEPT}"] == "kept by pattern '^demo-'"
    assert reasons[f"stack:{NOT_A_RUN_APP}"] == f"not a run-app (does not match '{RUN_APP_MATCH}')"
    assert re.fullmatch(
        rf"service {CONVERGING}_worker converging \(1 task pending, desired running\): "
        r"no suitable node \(scheduling constraints not satisfied on 1 node\); "
        r"run-app, newest object \d+ seconds? old < 3h \(its run may still be going\)",
        reasons[f"stack:{CONVERGING}"],
    ), reasons[f"stack:{CONVERGING}"]
    assert re.fullmatch(
        r"run-app, newest object \d+ seconds? old < 3h \(its run may still be going\)",
        reasons[f"stack:{YOUNG}"],
    ), reasons[f"stack:{YOUNG}"]

    ccci.run("reconcile", "--apply", "--yes")

    assert on_engine(engine, PAST_DEADLINE, ccci.env_file(PAST_DEADLINE)) == set()
    for stack in (KEPT, NOT_A_RUN_APP, YOUNG):
        assert on_engine(engine, stack, ccci.env_file(stack)) == before[stack], stack
    assert task_states(engine, f"{CONVERGING}_worker") == {"pending"}
    assert full_stack(CONVERGING, ccci.env_file(CONVERGING), secrets=()) <= on_engine(
        engine, CONVERGING, ccci.env_file(CONVERGING)
    )

    # Four hours on, the young one is an orphan, and so is the converging one: pending for
    # four hours is a stuck deploy, reaped although it converges.
    later = ccci.janitor_plan(ahead())
    assert set(changes(later)) == {f"stack:{YOUNG}", f"stack:{CONVERGING}"}
    assert (
        f"; reaped although service {CONVERGING}_worker stuck (1 task pending, desired "
        "running) for 4 hours: no suitable node"
    ) in changes(later)[f"stack:{CONVERGING}"]["reason"]
    still = noops(later)
    for stack in (KEPT, NOT_A_RUN_APP):
        assert still[f"stack:{stack}"] == reasons[f"stack:{stack}"]


# ---- c. a partial stack -----------------------------------------------------------------


def test_a_partial_stack_whose_services_were_removed_by_hand_is_reaped(ccci: Ccci) -> None:
    engine = ccci.engine
    ccci.write_inventory(abra_server="ci.example.org")  # {server} is abra_server when set
    env_file = ccci.env_file(OLD, server="ci.example.org")
    seed_run_app(ccci, OLD, env_server="ci.example.org")
    engine.docker("service", "rm", f"{OLD}_app")
    wait_until("the task containers to go", lambda: not stack_containers(engine, OLD))
    assert OLD not in names(engine, "stack", "ls", "--format", "{{.Name}}")
    partial = full_stack(OLD, env_file) - {("service", f"{OLD}_app")}
    assert on_engine(engine, OLD, env_file) == partial
    later = ahead()

    [reap] = changes(ccci.janitor_plan(later)).values()

    assert reap["address"] == f"stack:{OLD}"
    assert reap["label"] == "partial, 2 secrets, 1 config, 1 network, 1 volume, 1 env file"
    expected = reap_before(OLD, env_file)
    del expected["services"]
    assert sorted_before(reap) == expected

    ccci.run("janitor", "--now", stamp(later))

    assert on_engine(engine, OLD, env_file) == set()
    assert ccci.residual(OLD, expect=(0,)).stdout.strip() == f"Nothing of {OLD} is left."


def test_a_partial_stack_is_reaped_while_its_task_containers_are_still_stopping(
    ccci: Ccci,
) -> None:
    # A teardown killed right after `docker stack rm` (or `docker service rm`) leaves the
    # task containers stopping for a few seconds; the janitor of the next run starts then.
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    engine.docker("service", "rm", f"{OLD}_app")
    assert stack_containers(engine, OLD), "the task container was gone before the janitor ran"

    ccci.run("janitor", "--now", stamp(ahead()), expect=(0, 1))

    assert on_engine(engine, OLD, env_file) == set()


# ---- d. a deadline label ------------------------------------------------------------------


def test_a_young_stack_past_its_deadline_label_is_reaped_on_the_real_clock(ccci: Ccci) -> None:
    engine = ccci.engine
    deadline = int(now().timestamp()) - 120
    seed_run_app(ccci, PAST_DEADLINE, expires=deadline)
    seed_run_app(ccci, YOUNG, expires=deadline + 3 * 3600, secrets=())  # its deadline is ahead
    env_file = ccci.env_file(PAST_DEADLINE)

    plan = ccci.janitor_plan()

    [reap] = changes(plan).values()
    assert reap["address"] == f"stack:{PAST_DEADLINE}"
    iso = datetime.fromtimestamp(deadline, UTC).isoformat().replace("+00:00", "Z")
    why = reap["reason"]
    assert why.startswith(f"run-app past its deadline ci.expires={iso} (") and why.endswith(" ago)")
    # A deadline ahead keeps the stack, and says so (up to the policy's max_lifetime).
    assert noops(plan)[f"stack:{YOUNG}"].startswith("run-app before its deadline ci.expires=")

    ccci.run("reconcile", "--apply", "--yes")

    assert on_engine(engine, PAST_DEADLINE, env_file) == set()
    assert ("service", f"{YOUNG}_app") in on_engine(engine, YOUNG)
    ccci.residual(PAST_DEADLINE, expect=(0,))


# ---- e. a failure halfway, finished by the next run ---------------------------------------


def test_a_volume_held_outside_the_stack_fails_the_reap_and_the_next_run_finishes(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    volume = f"{OLD}_data"
    seed_run_app(ccci, OLD)
    # A container that is not part of the stack (no namespace label) mounts its volume.
    engine.docker(
        "run", "--detach", "--name", "holder", "-v", f"{volume}:/x", BASE_TAG, "sleep", "3600"
    )
    later = ahead()

    failed = ccci.run("janitor", "--now", stamp(later), expect=(1,))

    assert f"cc-ci: - stack {OLD} (" in failed.stdout
    assert "cc-ci : ok=0 changed=0 failed=1 skipped=0" in failed.stdout
    [line] = journal_changes(ccci.journal())
    assert (line["address"], line["status"]) == (f"stack:{OLD}", "failed")
    assert f"volume {volume}" in line["message"]
    assert "in use" in line["message"]
    [recap] = recaps(ccci.journal())
    assert (recap["failed"], recap["converged"], recap["remaining"]) == (1, False, [f"stack:{OLD}"])
    # Everything else of the stack is gone, the env file too; the volume kept its data.
    assert on_engine(engine, OLD, env_file) == {("volume", volume)}
    assert (Path(mountpoint(engine, volume)) / "f").read_text() == "data\n"
    left = ccci.residual(OLD, expect=(1,))
    assert residual_lines(left.stdout) == {("volume", volume)}

    engine.docker("rm", "--force", "holder")
    ccci.run("janitor", "--now", stamp(later), expect=(0,))

    assert on_engine(engine, OLD, env_file) == set()
    assert ccci.residual(OLD, expect=(0,)).stdout.strip() == f"Nothing of {OLD} is left."
    changed = journal_changes(ccci.journal())
    assert [c["status"] for c in changed] == ["failed", "ok"]
    assert changed[1]["label"] == "partial, 1 volume"


# ---- f. the prune gate opens in the same run ---------------------------------------------


def test_the_prune_gate_opens_in_the_same_run_once_the_orphan_is_planned(
    ccci: Ccci, gate_disk: str
) -> None:
    engine = ccci.engine
    ccci.write_policies(prune_disk=gate_disk)  # filled to 90%: the disk gate is open
    old_image = make_dangling_image(engine, now() - 3 * DAY)
    young_image = make_dangling_image(engine, now() - timedelta(hours=2))
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    later = ahead()

    plan = ccci.plan(later)

    assert set(changes(plan)) == {f"stack:{OLD}", f"image:{old_image}"}
    live = gates(plan)["no_live_stacks"]
    assert live["open"] is True
    assert live["observed"].endswith(" once 1 orphan is reaped"), live["observed"]
    assert gates(plan)["disk_usage"]["open"] is True
    # Without the orphan policy the same run-app keeps the gate closed.
    (ccci.policies / "orphans.yaml").rename(ccci.root / "orphans.yaml.off")
    closed = ccci.plan(later)
    assert changes(closed) == {}
    assert gates(closed)["no_live_stacks"]["observed"] == f"1 live run-app stack: {OLD}"
    (ccci.root / "orphans.yaml.off").rename(ccci.policies / "orphans.yaml")

    applied = ccci.run("reconcile", "--apply", "--yes", "--now", stamp(later))

    assert "cc-ci : ok=" in applied.stdout and "changed=2 failed=0 skipped=0" in applied.stdout
    lines = journal_changes(ccci.journal())
    assert [(c["address"], c["status"]) for c in lines] == [
        (f"stack:{OLD}", "ok"),
        (f"image:{old_image}", "ok"),
    ]
    assert on_engine(engine, OLD, env_file) == set()
    images = set(engine.docker("image", "ls", "-a", "-q", "--no-trunc").stdout.split())
    assert old_image not in images
    assert young_image in images
    [recap] = recaps(ccci.journal())
    assert recap["converged"] is True


# ---- a saved plan is re-checked just before the reap ---------------------------------------


def test_a_saved_reap_is_refused_as_stale_when_the_stack_is_scaled_after_the_plan(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    # Past its deadline on the real clock: ccci apply plans a saved plan again at the clock.
    seed_run_app(ccci, OLD, one_per_node=True, expires=int(now().timestamp()) - 600)
    ccci.run("reconcile", "--plan", "--out", "plan.json")
    saved = json.loads((ccci.root / "plan.json").read_text(encoding="utf-8"))
    assert set(changes(saved)) == {f"stack:{OLD}"}
    # A CI job scales the app after the plan: someone is using the stack. Converging alone
    # would not save a stack past its deadline (a stuck orphan converges for ever), but a
    # spec changed since the plan makes the saved reap stale.
    engine.docker("service", "scale", "--detach", f"{OLD}_app=2")
    wait_until("a pending replica", lambda: "pending" in task_states(engine, f"{OLD}_app"))
    present = on_engine(engine, OLD, env_file)

    refused = ccci.run("apply", "plan.json", "--yes", expect=(1,))

    assert "saved plan is stale" in refused.stderr and f"stack:{OLD}" in refused.stderr
    assert journal_changes(ccci.journal()) == []
    assert on_engine(engine, OLD, env_file) == present


# ---- g. residual --wait ------------------------------------------------------------------


def test_residual_wait_returns_0_once_a_teardown_in_the_background_has_finished(
    ccci: Ccci,
) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    errors: list[BaseException] = []

    def teardown() -> None:
        """abra's teardown: undeploy (`docker stack rm`, which returns at once while the
        engine stops the tasks), then the secrets, the volume once no container holds it,
        and the env file."""
        try:
            engine.docker("stack", "rm", OLD)
            for name in SECRETS:
                engine.docker("secret", "rm", f"{OLD}_{name}_v1")
            deadline = time.monotonic() + 60
            while engine.docker("volume", "rm", f"{OLD}_data", check=False).returncode:
                assert time.monotonic() < deadline, "the volume stayed in use"
                time.sleep(0.2)
            env_file.unlink()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    worker = threading.Thread(target=teardown)
    worker.start()
    try:
        done = ccci.residual(OLD, "--wait", "60s", expect=(0, 1))
    finally:
        worker.join(timeout=120)

    assert not errors, errors
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"Nothing of {OLD} is left."
    assert on_engine(engine, OLD, env_file) == set()


def test_residual_wait_gives_up_after_its_wait_and_lists_what_is_left(ccci: Ccci) -> None:
    engine = ccci.engine
    seed_run_app(ccci, OLD, secrets=())
    engine.docker("stack", "rm", OLD)  # `docker stack rm` never removes volumes
    env_file = ccci.env_file(OLD)

    left = ccci.residual(OLD, "--wait", "2s", expect=(1,))

    lines = residual_lines(left.stdout)
    # Task containers (and for a moment the network) may still be going; these stay.
    assert {(k, n) for k, n in lines if k in ("volume", "env file")} == {
        ("volume", f"{OLD}_data"),
        ("env file", str(env_file)),
    }
    assert {kind for kind, _ in lines} <= {"volume", "env file", "container", "network", "config"}
    assert {("volume", f"{OLD}_data"), ("env file", str(env_file))} <= on_engine(
        engine, OLD, env_file
    )


# ---- abra's secrets when nothing labelled is left -----------------------------------------


def secrets_only(cli: Ccci, stack: str) -> Path:
    """What a run killed between ``abra app secret generate`` and ``abra app deploy``
    leaves (or a teardown killed after removing the volume): abra's env file and its
    external, unlabelled secrets, and nothing labelled with the stack's name."""
    env_file = cli.env_file(stack)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("TYPE=redis\n", encoding="utf-8")
    for name in SECRETS:
        cli.engine.docker("secret", "create", f"{stack}_{name}_v1", "-", input="s3cret")
    return env_file


def test_residual_lists_abras_secrets_when_nothing_labelled_is_left(ccci: Ccci) -> None:
    env_file = secrets_only(ccci, OLD)
    env_file.unlink()  # only the secrets now

    left = ccci.residual(OLD, expect=(0, 1))

    assert left.returncode == 1
    assert residual_lines(left.stdout) == {("secret", f"{OLD}_{s}_v1") for s in SECRETS}


def test_a_stack_of_which_only_abras_secrets_are_left_is_reaped(ccci: Ccci) -> None:
    engine = ccci.engine
    env_file = secrets_only(ccci, OLD)
    later = ahead()

    assert f"stack:{OLD}" in changes(ccci.janitor_plan(later))
    ccci.run("janitor", "--now", stamp(later))

    assert on_engine(engine, OLD, env_file) == set()


# ---- h. one janitor at a time ------------------------------------------------------------


def test_the_janitor_exits_75_while_the_lock_is_held_and_reaps_nothing(ccci: Ccci) -> None:
    engine = ccci.engine
    env_file = ccci.env_file(OLD)
    seed_run_app(ccci, OLD)
    later = ahead()
    before = on_engine(engine, OLD, env_file)

    with hold(ccci.lock_path):  # a real flock, held by this (the test's) process
        busy = ccci.run("janitor", "--now", stamp(later), expect=(75,))
        # Only showing the plan takes no lock.
        shown = ccci.run("janitor", "--plan", "--now", stamp(later), expect=(0,))

    assert f"another apply holds the lock (pid {os.getpid()} since " in busy.stderr
    assert busy.stdout == ""
    assert f"- stack {OLD} (" in shown.stdout
    assert on_engine(engine, OLD, env_file) == before
    assert ccci.journal() == []
    # Released: the same run goes ahead; with --output json stdout stays pure JSON.
    done = ccci.run("janitor", "--output", "json", "--now", stamp(later), expect=(0,))
    assert set(changes(json.loads(done.stdout))) == {f"stack:{OLD}"}
    assert "cc-ci : ok=1 changed=1 failed=0 skipped=0" in done.stderr
    assert on_engine(engine, OLD, env_file) == set()
