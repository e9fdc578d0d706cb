"""The swarm's image cache on the private engine: images arrive by ``docker stack deploy``,
pinned and pulled by digest from the loopback registry, and keep no tag after teardown.

This is the shape the real CI host has (issue 10). An image loaded from a tarball or pulled
by tag would keep its tag and prove nothing here: every image below is pulled by the swarm
itself, by digest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from enginekit import (
    DAY,
    RetentionCli,
    change_list,
    eviction,
    image_ids,
    line_of,
    noops,
    now,
    prune_policy,
    publish,
    retention_policy,
    sleeper,
    tear_down,
    unique,
    wait_until,
)

from harness.engine import Engine
from harness.images import make_dangling_image
from harness.registry import Registry
from harness.swarm import deploy_stack

pytestmark = pytest.mark.engine

CACHE_NOOP = (
    "pulled by digest, untagged: the swarm's image cache, never a prune candidate "
    "(ImageRetention keeps or evicts it by last use)"
)


@pytest.fixture
def ccci(clean_engine: Engine, gate_disk: str, tmp_path: Path) -> RetentionCli:
    """The real CLI against a freshly reset engine; the gate disk at 90 %."""
    cli = RetentionCli(clean_engine, tmp_path, gate_disk)
    cli.write_inventory()
    return cli


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(engine.docker("image", "inspect", ref).stdout)
    return data[0]


def deploy_and_tear_down(engine: Engine, stack: str, ref: str) -> str:
    """Deploy as abra does (the client pins the digest), wait for the task, tear down;
    returns the id of the image the node pulled."""
    deploy_stack(engine, stack, sleeper(ref), resolve_image="always")
    pinned = engine.docker(
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        f"{stack}_app",
    ).stdout.strip()
    assert "@sha256:" in pinned, pinned  # stack deploy pinned the image by digest
    ident = inspect(engine, pinned)["Id"]
    tear_down(engine, stack)
    return str(ident)


def test_a_stack_deploys_images_by_digest_and_the_prune_keeps_them_as_cache(
    ccci: RetentionCli, registry: Registry
) -> None:
    engine = ccci.engine
    app = publish(engine, registry, unique("app"), created=now() - 30 * DAY)
    cached = deploy_and_tear_down(engine, unique("cache"), app.ref)
    pulled = inspect(engine, cached)
    assert pulled["RepoTags"] == []  # a pull by digest makes no tag
    assert pulled["RepoDigests"] == [f"{registry.ref(app.repo)}@{app.digest}"]
    leftover = make_dangling_image(engine, now() - 3 * DAY)
    ccci.write_prune_policy()

    plan = ccci.plan()

    assert [c["address"] for c in change_list(plan)] == [f"image:{leftover}"]
    assert noops(plan)[f"image:{cached}"] == CACHE_NOOP
    rows = ccci.images()
    assert (rows[cached]["kind"], rows[leftover]["kind"]) == ("pulled by digest", "leftover")
    text = ccci.run("images").stdout
    assert f"{registry.ref(app.repo)}:<none>" in text
    assert f"pulled by digest from {registry.ref(app.repo)}: cache, never pruned" in text
    assert "leftover (no tag, no digest)" in text

    ccci.apply()

    assert cached in image_ids(engine) and leftover not in image_ids(engine)
    # Docker's own prune (without --all) is less strict: it takes the swarm's cache too.
    engine.docker("image", "prune", "--force")
    assert cached not in image_ids(engine)


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1:5000/recipe/*",
        "127.0.0.1:5000/recipe/{name}",
        "127.0.0.1:5000/recipe/{name}:1",
        "127.0.0.1:5000/recipe/{name}@{digest}",
        "{digest}",
    ],
)
def test_retain_patterns_keep_a_digest_pulled_image_from_eviction_in_every_form(
    ccci: RetentionCli, registry: Registry, spelling: str
) -> None:
    engine = ccci.engine
    name = unique("kept")
    app = publish(engine, registry, name, tag="1", created=now() - 200 * DAY)
    cached = deploy_and_tear_down(engine, unique("cache"), app.ref)
    pattern = spelling.format(name=name, digest=app.digest)
    retention = ccci.write_policy(
        "retention",
        retention_policy(retain=(pattern,), evict=eviction(ccci.disk, down_to="10%")),
    )
    ccci.record_last_use({cached: now() - 60 * DAY})

    plan = ccci.plan()

    assert noops(plan)[f"image:{cached}"].startswith(
        f"retained by policy recipe-base-images ('{pattern}', "
        f"{retention}:{line_of(retention, pattern)})"
    )
    assert f"image:{cached}" not in {c["address"] for c in change_list(plan)}


def test_an_unretained_digest_pulled_image_is_evicted_by_last_use(
    ccci: RetentionCli, registry: Registry
) -> None:
    engine = ccci.engine
    app = publish(engine, registry, unique("idle"), created=now() - 200 * DAY)
    cached = deploy_and_tear_down(engine, unique("cache"), app.ref)
    ccci.write_policy(
        "retention",
        retention_policy(retain=("ccci-none/*",), evict=eviction(ccci.disk, down_to="10%")),
    )
    ccci.record_last_use({cached: now() - 60 * DAY})

    plan = ccci.plan()

    evicted = {c["address"]: c for c in change_list(plan)}[f"image:{cached}"]
    assert evicted["label"] == f"{registry.ref(app.repo)}:<none>"
    assert evicted["reason"].startswith("pulled by digest, unretained, last used ")
    ccci.apply()
    assert cached not in image_ids(engine)


def test_a_run_between_two_ccci_runs_counts_as_use_from_the_engines_events(
    ccci: RetentionCli, registry: Registry
) -> None:
    engine = ccci.engine
    app = publish(engine, registry, unique("daily"), created=now() - 200 * DAY)
    cached = deploy_and_tear_down(engine, unique("first"), app.ref)
    ccci.write_policy("retention", retention_policy(retain=("ccci-none/*",)))
    ccci.record_last_use({cached: now() - 60 * DAY})
    ccci.run("janitor", "--plan")  # the janitor before a deploy: it starts the event window
    before_run = now()

    # A whole CI run comes and goes between two ccci runs: deploy, run, teardown.
    deploy_and_tear_down(engine, unique("second"), app.ref)
    wait_until("the teardown to be over", lambda: cached in image_ids(engine))

    rows = ccci.images()

    assert rows[cached]["last_used"] >= before_run.strftime("%Y-%m-%dT%H:%M:%S")


def test_an_evicted_digest_pulled_image_frees_what_the_engines_disk_usage_answer_says(
    ccci: RetentionCli, registry: Registry
) -> None:
    # Beside a prune of the build cache whose disk gate is open, the build cache is read
    # first and, before API 1.42, the same answer sizes the images the eviction removes.
    engine = ccci.engine
    app = publish(engine, registry, unique("sized"), created=now() - 200 * DAY)
    cached = deploy_and_tear_down(engine, unique("sized"), app.ref)
    cache_prune = prune_policy(
        ccci.disk, live_stacks=None, older_than=(("dangling_build_cache", "24h"),)
    )
    ccci.write_policy("prune", cache_prune)
    ccci.write_policy(
        "retention",
        retention_policy(retain=("ccci-none/*",), evict=eviction(ccci.disk, down_to="10%")),
    )
    ccci.record_last_use({cached: now() - 60 * DAY})

    plan = ccci.plan()

    evicted = {c["address"]: c for c in change_list(plan)}[f"image:{cached}"]
    rows = engine.api("/system/df?type=image", timeout=60).get("Images") or []
    sized = {r["Id"]: max(int(r["Size"]) - max(int(r["SharedSize"]), 0), 0) for r in rows}
    assert evicted["before"]["unique_size"] == sized[cached]
    assert evicted["before"]["tags"] == []  # the swarm's cache: pulled by digest, no tag
