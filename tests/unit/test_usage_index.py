"""The in-use index finds exactly the images a reference names, as ``resolve`` does.

``rules.usage.resolver`` looks references up by canonical name or digest instead of
comparing each with every image; every reference here is resolved both ways.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccci.facts.model import Image
from ccci.rules.usage import resolve, resolver

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
ID_C = "sha256:" + "c" * 64

IMAGES = (
    Image(ID_A, ("redis:7-alpine", "redis:latest"), (f"redis@{D1}",), WHEN, 1),
    Image(ID_B, ("ghcr.io/acme/app:1.2",), (f"ghcr.io/acme/app@{D2}", f"mirror/app@{D2}"), WHEN, 1),
    Image(ID_C, (), (f"docker.io/library/nginx@{D1}",), WHEN, 1),  # same digest as redis's
    Image("sha256:" + "d" * 64, (), (), WHEN, 1),  # dangling
)

REFERENCES = [
    "redis",
    "redis:7-alpine",
    "docker.io/library/redis:latest",
    "index.docker.io/library/redis:latest",
    f"redis@{D1}",
    f"anything/else@{D1}",  # a digest is the content, whatever the repository
    f"redis:7-alpine@{D2}",
    "ghcr.io/acme/app:1.2",
    "ghcr.io/acme/app",
    "nginx",
    "aaaa",
    ID_B,
    "sha256:dddd",
    "<none>:<none>",
    "",
    "UPPER/case",
]


@pytest.mark.parametrize("ref", REFERENCES)
def test_the_index_resolves_a_reference_to_the_images_resolve_finds(ref: str) -> None:
    assert resolver(IMAGES)(ref) == resolve(ref, IMAGES)


def test_a_digest_shared_by_two_images_names_both_in_their_order() -> None:
    assert [i.id for i in resolver(IMAGES)(f"x@{D1}")] == [ID_A, ID_C]
