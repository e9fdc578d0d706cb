"""The one reference model: Docker's spellings of a reference normalise to one name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ccci.cli.main import cli
from ccci.config.inventory import Host, Inventory
from ccci.errors import InputError
from ccci.facts.model import Image, ImageKind
from ccci.facts.refs import InvalidReference, compile_pattern, names_image, parse_ref
from ccci.policy.load import load_for_hosts

DIGEST = "sha256:" + "d4" * 32


def image(tags: tuple[str, ...] = (), digests: tuple[str, ...] = ()) -> Image:
    return Image("sha256:" + "c3" * 32, tags, digests, datetime(2026, 1, 1, tzinfo=UTC), 1)


@pytest.mark.parametrize(
    "spelling",
    [
        "redis",
        "redis:latest",
        "library/redis",
        "docker.io/redis",
        "docker.io/library/redis:latest",
        "index.docker.io/library/redis",
        "index.docker.io/redis:latest",
    ],
)
def test_every_spelling_of_an_official_image_names_the_same_reference(spelling: str) -> None:
    assert parse_ref(spelling).name == "docker.io/library/redis:latest"
    assert parse_ref(spelling).familiar.startswith("redis")


def test_a_registry_with_a_port_keeps_its_colon_out_of_the_tag() -> None:
    ref = parse_ref(f"127.0.0.1:5000/recipe/app:2@{DIGEST}")
    assert (ref.repo, ref.tag, ref.digest) == ("127.0.0.1:5000/recipe/app", "2", DIGEST)
    assert parse_ref("localhost:5000/app").name == "localhost:5000/app:latest"
    assert parse_ref("coopcloud/traefik").repo == "docker.io/coopcloud/traefik"


@pytest.mark.parametrize(
    "text",
    ["Redis:7", "redis:7\n", " redis", "", "redis@sha256:zz", "a" * 64, "redis:bad tag"],
)
def test_what_docker_would_refuse_is_not_a_reference(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_ref(text)


def test_a_service_spec_names_an_image_by_digest_whatever_its_tag_says() -> None:
    pulled = image(digests=(f"redis@{DIGEST}",))
    assert pulled.kind is ImageKind.DIGEST
    assert names_image(f"redis:7-alpine@{DIGEST}", pulled)
    assert names_image(f"docker.io/library/redis:6@{DIGEST}", pulled)
    assert not names_image("redis:7-alpine", pulled)  # no tag to compare


def test_a_tag_in_the_long_form_of_the_containerd_store_names_the_short_reference() -> None:
    long_form = image(tags=("docker.io/library/redis:7-alpine",))
    assert names_image("redis:7-alpine", long_form)
    assert names_image("index.docker.io/library/redis:7-alpine", long_form)
    assert not names_image("bitnami/redis:7-alpine", long_form)


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("127.0.0.1:5000/recipe/*", True),
        ("*/recipe/*", True),
        ("127.0.0.1:5000/recipe/app", True),  # the digest's repository, whatever the tag
        ("127.0.0.1:5000/other/*", False),
        ("recipe/app", False),  # that is docker.io/recipe/app
        (DIGEST, True),
        (f"127.0.0.1:5000/recipe/app@{DIGEST}", True),
    ],
)
def test_a_pattern_matches_a_digest_pulled_image_by_the_repository_of_its_digest(
    pattern: str, matches: bool
) -> None:
    cached = image(digests=(f"127.0.0.1:5000/recipe/app@{DIGEST}",))
    assert compile_pattern(pattern).matches(cached) is matches


@pytest.mark.parametrize(
    "pattern", ["Redis:*", "redis:*\n", "redis@sha256:12", f"redis:*@{DIGEST}", "a" * 64]
)
def test_a_pattern_that_cannot_name_an_image_is_refused(pattern: str) -> None:
    with pytest.raises(InvalidReference):
        compile_pattern(pattern)


RETENTION = """apiVersion: ccci/v1
kind: ImageRetention
metadata: {name: recipe-base-images}
spec:
  retain:
    - redis:7-alpine
    - Postgres:15
"""


def test_a_retain_pattern_that_cannot_be_a_reference_is_a_located_error_at_load_and_in_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("policies").mkdir()
    Path("policies/retention.yaml").write_text(RETENTION, encoding="utf-8")
    done = CliRunner().invoke(cli, ["policy", "check", "policies"])
    assert done.exit_code == 1
    assert "policies/retention.yaml:7:" in done.output and "must be lowercase" in done.output
    inventory = Inventory({"cc-ci": Host("cc-ci", {}, ("all",))}, {"all": ("cc-ci",)}, "i.yaml")
    with pytest.raises(InputError) as caught:
        load_for_hosts([Path("policies")], inventory, inventory.limit(None))
    assert str(caught.value).startswith("policies/retention.yaml:7: spec.retain[1]: 'Postgres:15'")


@pytest.mark.parametrize(
    "key",
    ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"],
)
def test_docker_hub_is_one_registry_under_any_of_its_names(key: str) -> None:
    from ccci.facts.clientconfig import parse_client_config
    from ccci.facts.refs import registry_host

    config = parse_client_config("config.json", json.dumps({"auths": {key: {"auth": "dTpw"}}}))
    assert [a.registry for a in config.auths] == [registry_host("docker.io")] == ["docker.io"]
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"
