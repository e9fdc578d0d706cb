"""Facts: the pure ``parse_*`` functions against recorded-looking Engine API answers, the
snapshot's JSON round trip, and how objects group into stacks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ccci.facts.docker import (
    gather,
    parse_build_cache,
    parse_build_cache_records,
    parse_container,
    parse_daemon,
    parse_finished,
    parse_image,
    parse_network,
    parse_service,
    parse_swarm_object,
    parse_task,
    parse_volume,
)
from ccci.facts.model import (
    BuildCacheRecord,
    Container,
    Daemon,
    DiskUsage,
    Facts,
    Image,
    ImageKind,
    Network,
    Service,
    SwarmObject,
    Task,
    Volume,
)
from tests.unit.fakes import FakeConnector

RECORDED = json.loads(
    (Path(__file__).parent / "recorded" / "engine-26.1-swarm.json").read_text(encoding="utf-8")
)
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
A1 = "sha256:" + "a1" * 32
B2 = "sha256:" + "b2" * 32
C3 = "sha256:" + "c3" * 32
REDI = "redi-3fa9c1_ci_example_org"
WORD = "word-0b1c2d_ci_example_org"


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# Images


def test_an_untagged_image_with_a_digest_drops_the_none_placeholder_and_is_cache() -> None:
    image = parse_image(RECORDED["images"][0])
    assert image == Image(
        id=A1,
        tags=(),
        digests=("redis@sha256:" + "d4" * 32,),
        created=utc(2026, 11, 24, 3),
        size=41234567,
        parent="",
        labels={},
    )
    # Untagged but with a repo digest: pulled by digest, the swarm's cache, not a leftover.
    assert image.kind is ImageKind.DIGEST
    assert not image.dangling
    assert image.short_id == "a1a1a1a1a1a1"


def test_a_tagged_image_keeps_its_tags_sorted_and_its_labels() -> None:
    image = parse_image(RECORDED["images"][1])
    assert image.tags == ("traefik:latest", "traefik:v3.0")
    assert image.labels == {"org.opencontainers.image.version": "3.0.4"}
    assert image.created == utc(2025, 1, 1)
    assert not image.dangling


def test_a_locally_built_image_drops_none_digests_and_keeps_its_parent() -> None:
    image = parse_image(RECORDED["images"][2])
    assert image.digests == ()
    assert image.tags == ()
    assert image.parent == C3


# Containers


def test_a_container_loses_the_slash_of_its_name() -> None:
    raw = RECORDED["containers"][0]
    container = parse_container(raw)
    assert container == Container(
        id="0c" * 32,
        name="traefik_app.1.m1n2b3v4c5x6z7l8k9j0h1g2f",
        image="traefik:v3.0@sha256:" + "e5" * 32,
        image_id=C3,
        state="running",
        created=utc(2026, 11, 24, 4),
        finished=None,
        labels=raw["Labels"],
    )
    assert container.active


def test_an_exited_container_takes_its_finish_time_from_inspect() -> None:
    inspect = RECORDED["inspect_containers"]["1d" * 32]
    finished = parse_finished(inspect)
    assert finished == datetime(2026, 11, 25, 3, 0, 0, 987654, tzinfo=UTC)
    container = parse_container(RECORDED["containers"][1], finished)
    assert container.finished == finished
    assert container.labels == {}
    assert not container.active


def test_a_container_that_never_ran_has_no_finish_time() -> None:
    # Docker reports Go's zero time, 0001-01-01, for "never".
    assert parse_finished(RECORDED["inspect_containers"]["5b" * 32]) is None
    assert parse_finished({}) is None


def test_a_container_without_names_is_named_by_its_short_id() -> None:
    raw = {"Id": "ef" * 32, "Created": 1795489200, "State": "dead"}
    container = parse_container(raw)
    assert container.name == "ef" * 6
    assert container.image == ""
    assert container.image_id == ""


# Build cache


def test_build_cache_records_keep_use_sharing_and_times() -> None:
    shared, in_use = (parse_build_cache(r) for r in RECORDED["system_df_build_cache"]["BuildCache"])
    assert shared == BuildCacheRecord(
        id="k1m2n3o4p5q6r7s8t9u0v1w2x",
        type="regular",
        description="mount / from exec /bin/sh -c apk add curl",
        in_use=False,
        shared=True,
        size=5242880,
        created=datetime(2026, 11, 20, 3, 0, 0, 123456, tzinfo=UTC),
        last_used=datetime(2026, 11, 25, 3, 0, 0, 500000, tzinfo=UTC),
    )
    assert not shared.dangling
    assert in_use.in_use and not in_use.dangling
    assert in_use.last_used is None
    assert in_use.created == utc(2026, 11, 26, 22)


def test_a_build_cache_record_neither_in_use_nor_shared_is_dangling() -> None:
    raw = dict(RECORDED["system_df_build_cache"]["BuildCache"][0], Shared=False)
    assert parse_build_cache(raw).dangling


# Swarm


def test_a_service_keeps_its_update_state_replicas_and_pinned_image() -> None:
    service = parse_service(RECORDED["services"][0])
    assert service == Service(
        id="7x1q9m3k5v8n2b4c6d0f1g3h5",
        name=f"{REDI}_app",
        image="redis:7-alpine@sha256:" + "d4" * 32,
        labels={"com.docker.stack.image": "redis:7-alpine", "com.docker.stack.namespace": REDI},
        created=datetime(2026, 11, 27, 2, 55, 0, 123456, tzinfo=UTC),
        updated=datetime(2026, 11, 27, 2, 59, 30, 0, tzinfo=UTC),
        update_state="updating",
        replicas=1,
        update_started=datetime(2026, 11, 27, 2, 59, 30, tzinfo=UTC),
        update_message="update in progress",
        version=4711,
    )
    assert service.stack == REDI
    # Its convergence clock starts at the latest of creation, update and update start.
    assert service.spec_changed == datetime(2026, 11, 27, 2, 59, 30, tzinfo=UTC)


def test_a_global_service_without_an_update_has_no_replicas_and_no_state() -> None:
    service = parse_service(RECORDED["services"][1])
    assert service.replicas is None
    assert service.update_state == ""
    assert service.stack == "traefik"


def test_a_service_never_updated_counts_its_creation_as_its_update() -> None:
    raw = {key: value for key, value in RECORDED["services"][1].items() if key != "UpdatedAt"}
    service = parse_service(raw)
    assert service.updated == service.created == utc(2026, 10, 1)


def test_tasks_keep_state_desired_state_container_image_and_error() -> None:
    preparing, running, rejected = (parse_task(r) for r in RECORDED["tasks"])
    assert preparing == Task(
        id="p0o9i8u7y6t5r4e3w2q1a2s3d",
        service_id="7x1q9m3k5v8n2b4c6d0f1g3h5",
        state="preparing",
        desired_state="running",
        container_id="",
        image="redis:7-alpine@sha256:" + "d4" * 32,
        error="",
        created=datetime(2026, 11, 27, 2, 59, 30, tzinfo=UTC),
        changed=datetime(2026, 11, 27, 2, 59, 31, 100000, tzinfo=UTC),
        message="preparing",
        exit_code=None,
        node_id="q2w3e4r5t6y7u8i9o0p1a2s3d",
    )
    assert running.container_id == "0c" * 32
    assert running.exit_code == 0
    assert (running.state, running.desired_state) == ("running", "running")
    assert (rejected.state, rejected.desired_state) == ("rejected", "shutdown")
    assert rejected.error.startswith("No such image: redis:7-alpine@sha256:0707")


def test_volumes_keep_labels_and_convert_their_time_to_utc() -> None:
    stack_volume, anonymous, _ = (parse_volume(r) for r in RECORDED["volumes"]["Volumes"])
    assert stack_volume == Volume(
        name=f"{REDI}_data",
        driver="local",
        labels={"com.docker.stack.namespace": REDI},
        created=utc(2026, 11, 26, 1),
    )
    assert anonymous.labels == {}
    assert anonymous.created == utc(2026, 11, 20, 9)
    assert anonymous.stack == ""


def test_networks_keep_scope_and_zero_times_become_none() -> None:
    stack_net, proxy, bridge = (parse_network(r) for r in RECORDED["networks"])
    assert stack_net == Network(
        id="n3tw0rk000000000000000001",
        name=f"{REDI}_default",
        driver="overlay",
        scope="swarm",
        labels={"com.docker.stack.namespace": REDI},
        created=datetime(2026, 11, 27, 1, 55, 0, 123456, tzinfo=UTC),
    )
    assert proxy.created is None
    assert proxy.labels == {}
    assert bridge.scope == "local"
    assert bridge.created == utc(2026, 11, 1)


def test_secrets_and_configs_take_name_and_labels_from_their_spec() -> None:
    external, unlabelled, labelled = (parse_swarm_object(r) for r in RECORDED["secrets"])
    assert external == SwarmObject(
        id="s3cr3t0000000000000000001",
        name=f"{REDI}_db_password_v1",
        labels={},
        created=datetime(2026, 11, 27, 2, 54, 59, 500000, tzinfo=UTC),
    )
    assert unlabelled.labels == {}
    assert labelled.stack == "traefik"
    (config,) = (parse_swarm_object(r) for r in RECORDED["configs"])
    assert config.name == f"{REDI}_redis_conf_v1"
    assert config.stack == REDI


def test_the_daemon_is_described_from_info_and_version() -> None:
    assert parse_daemon(RECORDED["info"], RECORDED["version"]) == Daemon(
        name="cc-ci",
        server_version="26.1.5",
        api_version="1.45",
        data_root="/var/lib/docker",
        storage_driver="overlay2",
        swarm_state="active",
        swarm_manager=True,
        node_id="q2w3e4r5t6y7u8i9o0p1a2s3d",
        managers=("q2w3e4r5t6y7u8i9o0p1a2s3d",),
    )


def test_a_daemon_outside_a_swarm_is_inactive_and_no_manager() -> None:
    info = {key: value for key, value in RECORDED["info"].items() if key != "Swarm"}
    daemon = parse_daemon(info, {})
    assert (daemon.swarm_state, daemon.swarm_manager) == ("inactive", False)
    assert daemon.server_version == "26.1.5"
    assert daemon.api_version == ""


# gather, through a named fake connector that replays the recorded answers.


class RecordedApi:
    """The docker SDK's APIClient methods gather calls, answered from the recording."""

    def __init__(self, recorded: dict[str, Any], swarm: bool) -> None:
        self.recorded = recorded
        self.swarm = swarm
        self.inspected: list[str] = []

    def info(self) -> dict[str, Any]:
        if self.swarm:
            answer: dict[str, Any] = self.recorded["info"]
            return answer
        return dict(self.recorded["info"], Swarm={"LocalNodeState": "inactive"})

    def version(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.recorded["version"]
        return answer

    def images(self, all: bool = False) -> list[dict[str, Any]]:
        # all=True: untagged parents must be facts, so a child's removal never takes one
        # along unplanned.
        assert all is True, "untagged parent images must be gathered too"
        answer: list[dict[str, Any]] = self.recorded["images"]
        return answer

    def containers(self, all: bool = False) -> list[dict[str, Any]]:
        assert all is True, "stopped containers must be listed too"
        answer: list[dict[str, Any]] = self.recorded["containers"]
        return answer

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspected.append(container_id)
        answer: dict[str, Any] = self.recorded["inspect_containers"][container_id]
        return answer

    def volumes(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.recorded["volumes"]
        return answer

    def networks(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.recorded["networks"]
        return answer

    def _swarm_only(self, key: str) -> list[dict[str, Any]]:
        if not self.swarm:
            raise AssertionError(f"{key} asked of an engine outside a swarm")
        answer: list[dict[str, Any]] = self.recorded[key]
        return answer

    def services(self, status: bool = False) -> list[dict[str, Any]]:
        assert status is True, "UpdateStatus needs ?status=true"
        return self._swarm_only("services")

    def tasks(self) -> list[dict[str, Any]]:
        return self._swarm_only("tasks")

    def secrets(self) -> list[dict[str, Any]]:
        return self._swarm_only("secrets")

    def configs(self) -> list[dict[str, Any]]:
        return self._swarm_only("configs")

    def nodes(self) -> list[dict[str, Any]]:
        return self._swarm_only("nodes")


def recorded_connector(swarm: bool = True) -> FakeConnector:
    """The recorded host: the SDK's answers from ``RecordedApi``, ``/system/df`` as recorded,
    and the data root and /srv each 85 % full."""
    daemon = parse_daemon(RECORDED["info"], RECORDED["version"])
    disks = tuple(DiskUsage(p, 100, 85, 15) for p in ("/var/lib/docker", "/srv"))
    return FakeConnector(
        sdk=RecordedApi(RECORDED, swarm),
        system_df=RECORDED["system_df_build_cache"],
        facts=Facts("cc-ci", NOW, daemon, disks=disks),
    )


@pytest.fixture
def gathered() -> Facts:
    return gather(recorded_connector(), ["/var/lib/docker", "/srv"], now=NOW)


def test_gather_builds_one_snapshot_from_every_answer(gathered: Facts) -> None:
    assert gathered.host == "cc-ci"
    assert gathered.gathered_at == NOW
    assert gathered.daemon.data_root == "/var/lib/docker"
    assert [i.id for i in gathered.images] == [A1, B2, C3]
    assert [c.id for c in gathered.containers] == ["0c" * 32, "1d" * 32, "5b" * 32]
    assert [s.name for s in gathered.services] == [f"{REDI}_app", "traefik_app"]
    assert len(gathered.tasks) == 3
    assert len(gathered.build_cache) == 2
    assert len(gathered.volumes) == 3
    assert len(gathered.networks) == 3
    assert len(gathered.secrets) == 3
    assert len(gathered.configs) == 1


def test_gather_measures_the_data_root_and_every_gate_path_once(gathered: Facts) -> None:
    assert [d.path for d in gathered.disks] == ["/var/lib/docker", "/srv"]
    assert gathered.disk("/srv") == DiskUsage("/srv", 100, 85, 15)
    assert gathered.disk("/elsewhere") is None


def test_gather_asks_the_disk_usage_endpoint_for_the_build_cache_alone() -> None:
    conn = recorded_connector()
    gather(conn, now=NOW)
    asked = [r for r in conn.reads if r[0] == "get_json"]
    assert asked == [("get_json", "/system/df", {"type": "build-cache"})]


def test_gather_inspects_only_exited_containers_for_their_finish_time() -> None:
    conn = recorded_connector()
    facts = gather(conn, now=NOW)
    assert conn.api.inspected == ["1d" * 32]
    by_id = {c.id: c for c in facts.containers}
    assert by_id["1d" * 32].finished == datetime(2026, 11, 25, 3, 0, 0, 987654, tzinfo=UTC)
    assert by_id["5b" * 32].finished is None


def test_gather_outside_a_swarm_asks_for_no_swarm_objects() -> None:
    facts = gather(recorded_connector(swarm=False), now=NOW)
    assert facts.daemon.swarm_state == "inactive"
    assert (facts.services, facts.tasks, facts.secrets, facts.configs) == ((), (), (), ())
    assert len(facts.images) == 3


# The snapshot round-trips through JSON.


def test_a_gathered_snapshot_round_trips_through_json(gathered: Facts) -> None:
    again = Facts.from_dict(json.loads(gathered.to_json()))
    assert again == gathered
    assert again.to_json() == gathered.to_json()


def test_a_snapshot_keeps_none_times_and_empty_labels_through_json(gathered: Facts) -> None:
    again = Facts.from_dict(json.loads(gathered.to_json()))
    proxy = next(n for n in again.networks if n.name == "proxy")
    assert proxy.created is None
    assert proxy.labels == {}
    assert isinstance(again.images, tuple)
    assert isinstance(again.images[0].created, datetime)


def test_a_snapshot_missing_a_required_field_is_refused(gathered: Facts) -> None:
    data = json.loads(gathered.to_json())
    del data["images"][0]["created"]
    with pytest.raises(ValueError, match=r"Facts\.images\[0\]: missing field 'created'"):
        Facts.from_dict(data)


def test_a_snapshot_with_a_wrongly_typed_field_is_refused(gathered: Facts) -> None:
    data = json.loads(gathered.to_json())
    data["images"][0]["size"] = "41 MB"
    with pytest.raises(ValueError, match=r"Facts\.images\[0\]\.size: expected int, got str"):
        Facts.from_dict(data)


def test_a_snapshot_with_a_misspelled_field_is_refused(gathered: Facts) -> None:
    data = json.loads(gathered.to_json())
    data["containers"][1]["finshed"] = data["containers"][1].pop("finished")
    with pytest.raises(ValueError, match="finshed"):
        Facts.from_dict(data)


# Stacks are derived from labels, and abra's external secrets from their names.


def test_stacks_group_labelled_objects_and_external_secrets_by_name(gathered: Facts) -> None:
    stacks = {s.name: s for s in gathered.stacks()}
    assert list(stacks) == [REDI, "traefik", WORD]

    redi = stacks[REDI]
    assert [s.name for s in redi.services] == [f"{REDI}_app"]
    assert [v.name for v in redi.volumes] == [f"{REDI}_data"]
    assert [n.name for n in redi.networks] == [f"{REDI}_default"]
    assert [s.name for s in redi.secrets] == [f"{REDI}_db_password_v1"]
    assert [c.name for c in redi.configs] == [f"{REDI}_redis_conf_v1"]
    assert redi.live


def test_a_stack_with_only_volumes_and_secrets_left_is_partial_not_live(gathered: Facts) -> None:
    word = next(s for s in gathered.stacks() if s.name == WORD)
    assert word.services == ()
    assert [v.name for v in word.volumes] == [f"{WORD}_wp"]
    assert [s.name for s in word.secrets] == [f"{WORD}_admin_pass_v2"]
    assert not word.live


def test_unlabelled_objects_belong_to_no_stack(gathered: Facts) -> None:
    stacks = gathered.stacks()
    grouped_volumes = {v.name for stack in stacks for v in stack.volumes}
    grouped_networks = {n.name for stack in stacks for n in stack.networks}
    anonymous = next(v.name for v in gathered.volumes if not v.labels)
    assert anonymous not in grouped_volumes
    assert grouped_networks == {f"{REDI}_default"}
    traefik = next(s for s in stacks if s.name == "traefik")
    assert [s.name for s in traefik.secrets] == ["traefik_acme_v1"]


def test_a_labelled_secret_belongs_only_to_the_stack_its_label_names(gathered: Facts) -> None:
    # Named like a redi secret but labelled for traefik: the label decides.
    odd = SwarmObject(
        id="s3cr3t0000000000000000009",
        name=f"{REDI}_misfiled_v1",
        labels={"com.docker.stack.namespace": "traefik"},
        created=NOW,
    )
    facts = replace(gathered, secrets=(*gathered.secrets, odd))
    stacks = {s.name: s for s in facts.stacks()}
    assert odd in stacks["traefik"].secrets
    assert odd not in stacks[REDI].secrets


def test_a_stack_whose_services_were_removed_is_no_longer_live(gathered: Facts) -> None:
    facts = replace(gathered, services=tuple(s for s in gathered.services if s.stack != REDI))
    redi = next(s for s in facts.stacks() if s.name == REDI)
    assert not redi.live
    assert redi.volumes and redi.secrets and redi.configs and redi.networks


def test_build_cache_records_come_by_id_whatever_order_the_engine_answers_in() -> None:
    # BuildKit lists its records from a map: each call may give another order.
    raws = [
        {"ID": i, "Type": "regular", "CreatedAt": "2026-12-02T00:52:08.2Z"}
        for i in ("z919", "0wvp", "8pvm")
    ]
    ids = [r.id for r in parse_build_cache_records(raws)]
    assert ids == ["0wvp", "8pvm", "z919"]
    assert [r.id for r in parse_build_cache_records(reversed(raws))] == ids
