"""Hypothesis strategies for random valid policy sets, built through ccci's own loader.

Each set is YAML text, rendered, validated against the schemas, built and finalized for one
host exactly as ``ccci.policy.load.load_for_hosts`` does it, so a set ccci would refuse is
never planned (it is rejected, and the strategy is shaped so that happens rarely). Values
come from small pools chosen to meet the snapshots in ``snapshots.py``: every spelling of
one repository, digest and image-id patterns, run-app patterns anchored or not, ages on both
sides of the snapshots' ages.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from hypothesis import reject
from hypothesis import strategies as st
from snapshots import DISK_PATHS, EXPIRES_LABEL, HOST, digest, image_id

from ccci.config.inventory import Host
from ccci.config.yamlsrc import load_text
from ccci.errors import InputError
from ccci.policy import template
from ccci.policy.load import build, finalize
from ccci.policy.model import Policy

POLICY_FILE = "policies/fuzzed.yaml"

RUN_APPS = (
    "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_",
    "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_example_org$",
    "_ci_",
    "^redi-",
)
KEEP = ("^demo-", "_uk$", "^post-")
DURATIONS = ("1m", "30m", "2h", "3h", "1d", "3d", "14d")
PERCENTS = ("1%", "50%", "80%", "85%", "90%", "100%")
RETAIN = (
    "redis:7-alpine",
    "docker.io/library/redis:*",
    "index.docker.io/library/redis",
    "127.0.0.1:5001/recipe/*",
    "nginx",
    "*/*",
    "foo/bar:1",
    "postgres:1[5-7]*",
    image_id(0)[:19],
    f"redis@{digest(1)}",
    digest(2),
)
ENSURE = ("redis:7-alpine", "nginx:latest", "127.0.0.1:5001/recipe/app:1", f"foo/bar@{digest(3)}")
REAP_KINDS = ("services", "secrets", "configs", "networks", "volumes", "env_file")


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "ccci/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@st.composite
def _stack_match(draw: st.DrawFn) -> dict[str, str]:
    """A stack pattern written inline or through the shared StackSelector."""
    if draw(st.booleans()):
        return {"selector": "run-apps"}
    return {"match": draw(st.sampled_from(RUN_APPS))}


@st.composite
def prune_policy(draw: st.DrawFn, name: str) -> dict[str, Any]:
    gates: dict[str, Any] = {}
    if draw(st.booleans()):
        gates["disk_usage"] = {
            "path": draw(st.sampled_from(DISK_PATHS)),
            "at_least": draw(st.sampled_from(PERCENTS)),
        }
    if draw(st.booleans()):
        gates["no_live_stacks"] = draw(_stack_match())
    converging = draw(st.sampled_from([None, True, False, "1m", "30m", "2h"]))
    if converging is not None:
        gates["no_converging_services"] = (
            {"stuck_after": converging} if isinstance(converging, str) else converging
        )
    kinds = draw(
        st.lists(
            st.sampled_from(["dangling_images", "stopped_containers", "dangling_build_cache"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    prune = {k: {"older_than": draw(st.sampled_from(DURATIONS))} for k in kinds}
    return _doc("PrunePolicy", name, {"gates": gates, "prune": prune})


@st.composite
def retention_policy(draw: st.DrawFn, name: str, evicts: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    # Often nothing retained: a retained image is out of every other property's reach.
    retain = draw(st.lists(st.sampled_from(RETAIN), max_size=2, unique=True) | st.just([]))
    if retain:
        spec["retain"] = retain
    ensure = draw(st.lists(st.sampled_from(ENSURE), max_size=2, unique=True))
    if ensure:
        spec["ensure_present"] = ensure
    if evicts or draw(st.booleans()) or not spec:
        high = draw(st.sampled_from([50, 80, 85, 90]))
        evict: dict[str, Any] = {
            "when": {
                "disk_usage": {"path": draw(st.sampled_from(DISK_PATHS)), "at_least": f"{high}%"}
            },
            "down_to": f"{draw(st.sampled_from([1, 40, high - 5]))}%",
            "unused_for": draw(st.sampled_from(DURATIONS)),
        }
        if draw(st.booleans()):
            evict["max_per_run"] = draw(st.integers(1, 3))
        spec["evict"] = evict
    return _doc("ImageRetention", name, spec)


@st.composite
def orphan_policy(draw: st.DrawFn, name: str) -> dict[str, Any]:
    orphan_after = draw(st.sampled_from(["1m", "3h", "1d"]))
    spec: dict[str, Any] = {
        "run_apps": draw(_stack_match()),
        "orphan_after": orphan_after,
        "reap": draw(st.lists(st.sampled_from(REAP_KINDS), min_size=1, max_size=6, unique=True)),
    }
    if draw(st.booleans()):
        spec["expires_label"] = EXPIRES_LABEL
    if draw(st.booleans()):
        spec["max_lifetime"] = draw(st.sampled_from(["1d", "3d"]))
    keep = draw(st.lists(st.sampled_from(KEEP), max_size=2, unique=True))
    if keep:
        spec["keep"] = keep
    spec["abra_dir"] = "/root/.abra"
    return _doc("OrphanStackPolicy", name, spec)


@st.composite
def policy_texts(draw: st.DrawFn, every_kind: bool = False) -> tuple[str, str]:
    """A policy file (YAML text, one document per policy) and the host's ``abra_server``;
    ``every_kind``: at least one prune, one eviction and one orphan policy."""
    least = 1 if every_kind else 0
    docs = [_doc("StackSelector", "run-apps", {"match": draw(st.sampled_from(RUN_APPS))})]
    docs += [draw(prune_policy(f"prune-{i}")) for i in range(draw(st.integers(least, 2)))]
    docs += [
        draw(retention_policy(f"keep-{i}", evicts=every_kind and i == 0))
        for i in range(draw(st.integers(least, 2)))
    ]
    docs += [draw(orphan_policy(f"reap-{i}")) for i in range(draw(st.integers(least, 2)))]
    # JSON is YAML: the text is exactly what a policy file could hold.
    text = "---\n".join(json.dumps(d) + "\n" for d in docs)
    return text, draw(st.sampled_from(["", "cc-ci"]))


@functools.lru_cache(maxsize=4096)
def load_policies(text: str, abra_server: str = "") -> tuple[Policy, ...]:
    """The policies as ccci loads them for the host; a set ccci refuses is not generated."""
    variables: dict[str, Any] = {"inventory_hostname": HOST}
    if abra_server:
        variables["abra_server"] = abra_server
    host = Host(HOST, variables, ("all", "ci"))
    built = tuple(
        build(template.render(d, host.vars, host.name)) for d in load_text(text, POLICY_FILE)
    )
    return finalize(built, host)


def policy_sets(every_kind: bool = False) -> st.SearchStrategy[tuple[Policy, ...]]:
    return policy_texts(every_kind).map(_accepted)


def _accepted(drawn: tuple[str, str]) -> tuple[Policy, ...]:
    try:
        return load_policies(*drawn)
    except InputError:
        reject()
