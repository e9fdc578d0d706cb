"""The engine's disk-usage call (``/system/df``) is its slowest read: before API 1.42 it sizes
every image, container and volume whatever ``type`` asks for. A plan whose prune reads the
build cache early and whose eviction wants image sizes makes it once on such an engine (its
answer has both), twice on a newer one (each asked for alone), and does not ask BuildKit
itself for the build cache then (tests/faults/test_buildkit_reads.py: when it does).

Every request reaches the private engine through the fault proxy (harness/faultproxy.py),
which here only counts what it forwards: every answer is the real engine's. The answer's
container list, which ccci never reads, is left undecoded (ccci.connectors.dfanswer); what
remains is what a whole decode gives.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ccci_cli import HOST
from faultkit import BUILD_CACHE_PRUNE, Ccci

from ccci.connectors.local import LocalConnector
from harness.engine import Engine
from harness.faultproxy import FaultProxy
from harness.images import ensure_busybox_image, load_image

MIB = 1024 * 1024


def _retention(disk: str) -> str:
    # The gate filesystem is 90 % full: the eviction's gate is open, so it wants sizes.
    return f"""\
apiVersion: ccci/v1
kind: ImageRetention
metadata: {{name: cache}}
hosts: ci
spec:
  retain: ['redis:*']
  evict:
    when: {{disk_usage: {{path: '{disk}', at_least: 50%}}}}
    down_to: 40%
    unused_for: 14d
    max_per_run: 5
"""


def _api_version(engine: Engine) -> tuple[int, int]:
    major, minor = str(engine.api("/version")["ApiVersion"]).split(".")[:2]
    return int(major), int(minor)


def test_one_disk_usage_call_serves_the_build_cache_and_the_image_sizes_before_api_1_42(
    ccci: Ccci, proxy: FaultProxy, clean_engine: Engine
) -> None:
    # An idle image the eviction removes: its change says what removing it frees.
    now = datetime.now(UTC)
    idle = load_image(clean_engine, "ccci-df/idle:1", now - timedelta(days=100), MIB)
    ccci.record_last_use({idle: now - timedelta(days=30)})
    for old in ccci.policies.glob("*.yaml"):
        old.unlink()
    ccci.write_policy("prune", BUILD_CACHE_PRUNE)
    ccci.write_policy("retention", _retention(ccci.disk))
    plan = json.loads(ccci.run("reconcile", "--plan", "--output", "json").stdout)
    changes = {c["address"]: c for h in plan["hosts"] for c in h["changes"]}
    evicted = changes[f"image:{idle}"]
    # The size the engine's disk-usage answer gives: the image less the layer it shares.
    assert MIB <= evicted["before"]["unique_size"] < evicted["before"]["size"]
    calls = [r for r in proxy.seen if r.method == "GET" and r.path == "/system/df"]
    expected = 1 if _api_version(clean_engine) < (1, 42) else 2
    assert len(calls) == expected, [r.query for r in calls]
    # Nothing but reads reached the engine.
    assert {r.method for r in proxy.seen} == {"GET"}


def test_the_engines_disk_usage_answer_less_its_containers_is_its_whole_answer_less_them(
    proxy: FaultProxy, clean_engine: Engine
) -> None:
    # A container whose label holds what the container list's end is found by.
    tag = ensure_busybox_image(clean_engine)
    clean_engine.docker(
        "create", "--label", 'note=],"Volumes":[]}', "--name", "ccci-df-label", tag, "true"
    )
    reads = LocalConnector(host=HOST, docker_host=proxy.docker_host)
    whole = reads.get_json("/system/df", {"type": "build-cache"})
    lean = reads.get_json("/system/df", {"type": "build-cache"}, leave_out=("Containers",))
    assert whole["Containers"], "the engine listed no container: nothing was left out"
    if _api_version(clean_engine) < (1, 42):
        assert "Containers" not in lean  # the answer had them, and they were not decoded
    assert {k: v for k, v in lean.items() if k != "Containers"} == {
        k: v for k, v in whole.items() if k != "Containers"
    }
