"""``/system/df``'s answer without its container list: exactly the whole answer less
``Containers`` when laid out as the engine writes it, and None (decode it whole) for any
answer it cannot be sure of, however its labels and names are made."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccci.connectors.dfanswer import without_containers
from ccci.connectors.engineapi import _decoded


def _as_go_writes(answer: dict[str, Any]) -> str:
    """Compact JSON in the struct's field order, as the engine's encoder writes it."""
    return json.dumps(answer, separators=(",", ":"))


def _answer(containers: Any, volumes: Any = (), build_cache: Any = ()) -> dict[str, Any]:
    return {
        "LayersSize": 189913727,
        "Images": [
            {"Id": "sha256:" + "a1" * 32, "Size": 100, "SharedSize": 40, "Labels": {}},
            {"Id": "sha256:" + "b2" * 32, "Size": 7, "SharedSize": -1, "Labels": None},
        ],
        "Containers": containers,
        "Volumes": list(volumes),
        "BuildCache": None if build_cache is None else list(build_cache),
        "BuilderSize": 0,
    }


CONTAINER = {
    "Id": "c0" * 32,
    "Names": ["/job"],
    "Labels": {"Volumes": "x", "note": '],"Volumes":[1]}'},
    "Mounts": [{"Type": "volume", "Name": "data"}],
    "SizeRootFs": 1982438,
}
VOLUME = {"Name": "data", "Labels": {"com.docker.stack.namespace": "app"}, "Options": None}
RECORD = {"ID": "k1m2", "Parents": [], "Type": "regular", "Shared": False, "Size": 10}


def _less_containers(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "Containers"}


@pytest.mark.parametrize(
    "answer",
    [
        _answer([CONTAINER, CONTAINER]),
        _answer([]),
        _answer([CONTAINER], [VOLUME], [RECORD]),
        _answer([CONTAINER], [], None),
    ],
    ids=["containers", "no-containers", "volumes-and-cache", "null-cache"],
)
def test_the_answer_is_the_whole_answer_less_its_containers(answer: dict[str, Any]) -> None:
    assert without_containers(_as_go_writes(answer)) == _less_containers(answer)


@pytest.mark.parametrize(
    "text",
    [
        # Another field order, or a field the engine does not write.
        json.dumps({"Images": [], "LayersSize": 1, "Containers": [], "Volumes": []}),
        _as_go_writes({**_answer([CONTAINER]), "Extra": [1]}),
        # Containers null: no list to end.
        _as_go_writes(_answer(None)),
        # Spaced JSON, as another writer than the engine's encoder might make.
        json.dumps(_answer([CONTAINER]), indent=1),
        # The last '],"Volumes":' nested inside the build cache, not at the top.
        _as_go_writes(_answer([CONTAINER], [], [{"ID": "k1m2", "Parents": [], "Volumes": 1}])),
        "[]",
        "",
    ],
    ids=["order", "extra-key", "null-containers", "spaced", "nested-last", "array", "empty"],
)
def test_an_answer_not_laid_out_as_the_engine_writes_it_is_left_to_a_whole_decode(
    text: str,
) -> None:
    assert without_containers(text) is None


def test_a_read_leaving_out_containers_decodes_the_rest_as_a_whole_decode_would() -> None:
    for answer in (_answer([CONTAINER]), _answer(None)):
        body = _as_go_writes(answer).encode()
        whole = _decoded("/system/df", 200, "OK", body)
        lean = _decoded("/system/df", 200, "OK", body, ("Containers",))
        assert _less_containers(lean) == _less_containers(whole) == _less_containers(answer)
        assert "Containers" not in lean or lean == whole


def test_a_broken_answer_is_the_error_a_whole_decode_gives() -> None:
    body = b'{"LayersSize":1,"Images":[{"Id":'
    with pytest.raises(ValueError) as whole:
        _decoded("/system/df", 200, "OK", body)
    with pytest.raises(ValueError) as lean:
        _decoded("/system/df", 200, "OK", body, ("Containers",))
    assert str(lean.value) == str(whole.value)
