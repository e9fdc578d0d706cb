"""The stdlib parse of plain references agrees with docker-image-py on every text it takes.

ccci parses the common spellings itself (see ccci.facts.refs._plain_ref) so a plan need not
import docker-image-py; these tests hold that shortcut to the reference port: whatever it
accepts must parse to exactly the port's answer, and nothing the port refuses gets in.
"""

from __future__ import annotations

import itertools
import random

import pytest
from docker_image import reference

from ccci.facts.refs import InvalidReference, Ref, _plain_ref, parse_ref

DOMAINS = ["", "localhost/", "localhost:5000/", "docker.io/", "index.docker.io/",
           "registry.example.org/", "reg-1.example.org:443/", "127.0.0.1:5000/",
           "-bad.org/", "bad-.org/", "a..b/", "x:y:z/", "Upper.org/", "a:/"]  # fmt: skip
PATHS = ["redis", "library/redis", "bench/app07", "a/b/c", "a__b", "a___b", "a.b", "a..b",
         "a-b", "a--b", "-a", "a-", "a_", "_a", "A", "redis/", "/redis", "a//b",
         "ab" * 32, "0123456789abcdef" * 4, "bench/" + "0123456789abcdef" * 4]  # fmt: skip
TAGS = ["", ":7", ":latest", ":build-00042", ":v1.2.3", ":_x", ":.x", ":-x", ":A_b.c-D",
        ":" + "t" * 128, ":" + "t" * 129, ":", ":a/b", ":é"]  # fmt: skip


def port_answer(text: str) -> Ref | None:
    """The reference port's parse, normalised as ccci.facts.refs does, or None when it refuses."""
    try:
        parsed = reference.Reference.parse_normalized_named(text)
    except reference.InvalidReference:
        return None
    name = str(parsed["name"])
    if name.startswith("index.docker.io/"):
        name = "docker.io" + name[len("index.docker.io") :]
    return Ref(repo=name, tag=str(parsed["tag"] or ""), digest=str(parsed["digest"] or ""))


CORPUS = ["".join(parts) for parts in itertools.product(DOMAINS, PATHS, TAGS)]


def test_every_plain_parse_is_the_reference_ports_parse() -> None:
    for text in CORPUS:
        plain = _plain_ref(text)
        if plain is not None:
            assert plain == port_answer(text), text


@pytest.mark.parametrize(
    "text",
    ["redis", "redis:7", "bench/app07:build-00042", "docker.io/library/redis:latest",
     "index.docker.io/redis", "localhost:5000/ci/app:v1.2.3", "127.0.0.1:5000/a/b/c:_x"],
)  # fmt: skip
def test_the_common_spellings_take_the_shortcut(text: str) -> None:
    assert _plain_ref(text) is not None
    assert _plain_ref(text) == port_answer(text)


def test_random_texts_the_shortcut_takes_parse_as_the_port_does() -> None:
    rng = random.Random(13)
    alphabet = "ab09.-_:/A"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        plain = _plain_ref(text)
        if plain is not None:
            assert plain == port_answer(text), text


@pytest.mark.parametrize("text", ["redis:", "ab" * 32, "x:y:z/a", "a//b", "redis@sha256:zz"])
def test_text_outside_the_plain_subset_is_still_judged_by_the_port(text: str) -> None:
    assert _plain_ref(text) is None
    with pytest.raises(InvalidReference):
        parse_ref(text)
