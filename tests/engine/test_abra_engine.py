"""abra's real layout on the private engine: recipes deployed as abra deploys them, runs
killed at every phase, and the janitor finding each object the way abra named it.

The recipes are tests/data/recipes (shaped like Co-op Cloud's: several services, external
secrets ``<stack>_<secret>_<version>``, versioned configs, named volumes, the ``proxy``
network); harness/abra.py does what ``abra app new``, ``abra app secret generate`` and
``abra app deploy`` do, with env files under ``$ABRA_DIR/servers/default`` (abra's folder
for a local server, whatever ccci's inventory calls the host). What is left on the engine
is read with the docker CLI, independently of ccci; the stack names with harness.abra's own
copy of abra's naming rule.

Ages: a stack cannot be backdated, so killed runs are judged four hours ahead (``--now``;
the policy's ``orphan_after`` is 3h) or by a ``ci.expires`` deadline already past. Each
test applies once per state folder.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccci_cli import CliWorkspace
from enginekit import (
    AHEAD,
    STACK_LABEL,
    changes,
    manual,
    names,
    noops,
    now,
    on_engine,
    orphan_policy,
    selector_policy,
)

from harness.abra import (
    AbraApp,
    Recipe,
    app_new,
    deploy,
    secret_generate,
    stack_name,
    undeploy_services,
)
from harness.engine import Engine

pytestmark = pytest.mark.engine

# Anchored at the CI domain: a run of which only secrets are left is then one stack for
# sure (a prefix-only pattern matches several prefixes of a secret's name).
ANCHORED = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_example_org$"
PREFIX = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


class Ccci(CliWorkspace):
    """The real CLI against the private engine; abra's folder under ``root``."""

    abra_vars = True

    def write(self, run_apps: str, abra_server: str = "") -> None:
        """The inventory, and the janitor of the run-apps ``run_apps`` matches, finding
        env files in abra's own folder."""
        self.write_inventory(abra_server=abra_server)
        janitor = orphan_policy(env_file=None, abra_dir="{{ abra_dir }}")
        self.write_policy("orphans", selector_policy(run_apps) + "---\n" + janitor)


@pytest.fixture
def ccci(clean_engine: Engine, tmp_path: Path) -> Ccci:
    cli = Ccci(clean_engine, tmp_path)
    cli.write(ANCHORED)
    return cli


# ---- reading the engine and abra's folder, independently of ccci ------------------------


def on_host(engine: Engine, app: AbraApp) -> set[tuple[str, str]]:
    """Everything of the app the engine and abra's folder hold (see on_engine)."""
    return on_engine(engine, app.stack, app.env_file)


def kinds(found: set[tuple[str, str]]) -> set[str]:
    return {kind for kind, _ in found}


def new_app(cli: Ccci, recipe: str, domain: str, **kw: Any) -> AbraApp:
    return app_new(cli.abra_dir, Recipe.named(recipe), domain, **kw)


# ---- the tests ---------------------------------------------------------------------------


def test_runs_killed_at_every_phase_are_reaped_completely_and_a_live_run_and_another_app_stay(
    ccci: Ccci,
) -> None:
    engine, start = ccci.engine, now()

    after_secrets = new_app(ccci, "notes", "note-1a2b3c.ci.example.org")
    secret_generate(engine, after_secrets)

    mid_deploy = new_app(ccci, "forum", "foru-4d5e6f.ci.example.org")
    secret_generate(engine, mid_deploy)
    deploy(engine, mid_deploy, services=("db", "cache"))  # killed before web and app

    after_deploy = new_app(ccci, "board", "boar-7a8b9c.ci.example.org")
    secret_generate(engine, after_deploy)
    deploy(engine, after_deploy, expires=unix(start + timedelta(hours=1)))

    mid_teardown = new_app(ccci, "notes", "note-0d0e0f.ci.example.org")
    secret_generate(engine, mid_teardown)
    deploy(engine, mid_teardown)
    undeploy_services(engine, mid_teardown)  # stack rm killed after its services went

    live = new_app(ccci, "forum", "foru-aa11bb.ci.example.org")
    secret_generate(engine, live)
    deploy(engine, live, expires=unix(start + timedelta(hours=6)))

    other = new_app(ccci, "board", "board.example.org")  # an app, but not a CI run-app
    secret_generate(engine, other)
    deploy(engine, other)

    killed = (after_secrets, mid_deploy, after_deploy, mid_teardown)
    before = {app.stack: on_host(engine, app) for app in (*killed, live, other)}
    assert kinds(before[after_secrets.stack]) == {"secret", "env file"}
    left_by_teardown = {"secret", "config", "network", "volume", "env file"}
    assert kinds(before[mid_teardown.stack]) == left_by_teardown

    later = start + AHEAD
    plan = ccci.janitor_plan(later)
    planned = changes(plan)
    assert set(planned) == {f"stack:{app.stack}" for app in killed}
    for app in killed:
        reaped = planned[f"stack:{app.stack}"]["before"]
        listed = {(kind.rstrip("s"), n) for kind, names in reaped.items() for n in names}
        listed = {("env file" if k == "env_file" else k, n) for k, n in listed}
        assert listed == {o for o in before[app.stack] if o[0] != "container"}, app.stack
    assert noops(plan)[f"stack:{live.stack}"].startswith("run-app before its deadline ci.expires=")
    assert noops(plan)[f"stack:{other.stack}"].startswith("not a run-app")

    ccci.janitor(later)

    for app in killed:
        assert on_host(engine, app) == set(), app.stack
        done = ccci.residual(app.stack)
        assert (done.returncode, done.stdout) == (0, f"Nothing of {app.stack} is left.\n")
    assert on_host(engine, live) == before[live.stack]
    assert on_host(engine, other) == before[other.stack]
    left = ccci.residual(live.stack)
    assert left.returncode == 1 and f"env file\t{live.env_file}" in left.stdout.splitlines()


def test_abras_own_names_lead_to_the_env_file_a_long_domain_and_a_set_stack_name(
    ccci: Ccci,
) -> None:
    engine, start = ccci.engine, now()
    ccci.write(PREFIX)
    past = unix(start - timedelta(minutes=5))

    long_domain = "boar-5f5f5f.ci.a-rather-long-continuous-integration.example.org"
    shortened = new_app(ccci, "board", long_domain)
    assert len(shortened.stack) == 45 and shortened.stack == stack_name(long_domain)
    secret_generate(engine, shortened)
    deploy(engine, shortened, expires=past)

    renamed = new_app(ccci, "notes", "note-9e9e9e.ci.example.org", stack="note-9e9e9e_ci_x")
    secret_generate(engine, renamed)
    deploy(engine, renamed, expires=past)

    plan = ccci.janitor_plan()
    planned = changes(plan)
    assert set(planned) == {f"stack:{shortened.stack}", f"stack:{renamed.stack}"}
    assert planned[f"stack:{shortened.stack}"]["before"]["env_file"] == [str(shortened.env_file)]
    assert planned[f"stack:{renamed.stack}"]["before"]["env_file"] == [str(renamed.env_file)]

    ccci.janitor()

    for app in (shortened, renamed):
        assert on_host(engine, app) == set(), app.stack
        assert ccci.residual(app.stack).returncode == 0


def test_names_a_recipe_chose_to_leave_their_folder_are_refused_and_shown(ccci: Ccci) -> None:
    engine, start = ccci.engine, now()
    ccci.write(PREFIX)
    escape = "redi-3fa9c1_ci_/../../etc"
    engine.docker("volume", "create", "--label", f"{STACK_LABEL}={escape}", "crafted_data")

    # Only the env file: Docker itself refuses such a name for a secret or a service.
    hostile = new_app(ccci, "board", "boar-c0c0c0.ci.example.org", stack="boar-c0c0c0_ci_\x1b[2Jx")

    wide = new_app(ccci, "board", "boar-d1d1d1.ci.example.org")
    secret_generate(engine, wide)
    deploy(engine, wide, expires="１２３")  # full-width digits: not a unix time

    plan = ccci.janitor_plan(start + timedelta(minutes=30))
    assert changes(plan) == {}
    refused = manual(plan)  # never acted on, and never passed over unseen
    assert refused[f"stack:{escape}"] == "refused: it holds a path separator"
    assert refused[f"stack:{hostile.stack}"] == "refused: it holds the control character U+001B"
    reasons = noops(plan)
    assert reasons[f"stack:{wide.stack}"].endswith("; label ci.expires='１２３' is not a unix time")
    assert reasons[f"stack:{wide.stack}"].startswith("run-app, newest object")

    ccci.janitor(start + timedelta(minutes=30))

    assert "crafted_data" in names(engine, "volume", "ls", "--format", "{{.Name}}")
    assert hostile.env_file.exists()
    assert kinds(on_host(engine, wide)) >= {"service", "config", "volume", "env file"}
