"""``refs.matches_any``: retention tries every pattern only on the images one of them
matches, found with one regex for all the globs. It must answer exactly as trying each
pattern does, for every kind of pattern (globs, a registry glob, ids, digests)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from ccci.facts.model import Image
from ccci.facts.refs import compile_pattern, matches_any

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
DIGEST = "sha256:" + "cd" * 32

IMAGES = (
    Image("sha256:" + "01" * 32, ("redis:7-alpine",), (), WHEN, 1),
    Image("sha256:" + "02" * 32, ("postgres:16.2", "postgres:16"), (), WHEN, 1),
    Image("sha256:" + "03" * 32, (), (f"redis@{DIGEST}",), WHEN, 1),
    Image("sha256:" + "04" * 32, (), (f"ghcr.io/acme/redis@{DIGEST}",), WHEN, 1),
    Image("sha256:" + "05" * 32, ("localhost:5000/recipe/app:build-7",), (), WHEN, 1),
    Image("sha256:" + "06" * 32, (), (), WHEN, 1),
    Image("sha256:" + "07" * 32, ("127.0.0.1:5000/x/y:1", "nginx:1.25-alpine"), (), WHEN, 1),
    Image("sha256:" + "ef" * 32, ("<none>:<none>",), (), WHEN, 1),
)
PATTERNS = (
    "redis",
    "redis:7-alpine",
    "postgres:1[5-7]*",
    "nginx:*",
    "*/recipe/*:*",
    "ghcr.io/*/redis",
    "*",
    "sha256:efef",
    f"redis@{DIGEST}",
    "traefik:*",
)


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_matching_any_of_some_patterns_is_matching_one_of_them(size: int) -> None:
    for texts in itertools.combinations(PATTERNS, size):
        patterns = [compile_pattern(t) for t in texts]
        # Given as a generator, as retention gives them: read once.
        wanted = matches_any(p for p in patterns)
        for image in IMAGES:
            assert wanted(image) is any(p.matches(image) for p in patterns), (texts, image.tags)


def test_every_pattern_but_one_matches_some_image_so_the_comparison_above_means_something() -> None:
    matching = {t for t in PATTERNS if any(compile_pattern(t).matches(i) for i in IMAGES)}
    assert matching == set(PATTERNS) - {"traefik:*"}
