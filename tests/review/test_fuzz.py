"""No policy text, however malformed, crashes review or ccci's loader: every failure is a
clean ccci error (InputError) that names where it is.

Fuzzing ccci's own loader (``ccci.policy.load.load_for_hosts``) found crashes; each was fixed
and its exact input stays below as a regression test.
"""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from review_helpers import BASE

from ccci.config.inventory import Host, Inventory
from ccci.errors import CcciError, InputError
from ccci.policy.load import load_for_hosts
from ccci.review.check import run_check

VALID = [p.read_text(encoding="utf-8") for p in sorted((BASE / "policies").glob("*.yaml"))]
INVENTORY = Inventory(
    {
        "cc-ci": Host(
            "cc-ci",
            {"docker_data_root": "/var/lib/docker", "abra_dir": "/root/.abra"},
            ("all", "ci"),
        )
    },
    {"all": ("cc-ci",), "ci": ("cc-ci",)},
    "inventory.yaml",
    {"docker_data_root": "/var/lib/docker"},
)

# Characters and snippets that matter to YAML, Jinja2, patterns and ccci's values.
TOKENS = st.sampled_from(
    [
        "\n",
        " ",
        "  ",
        ":",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        "'",
        '"',
        "&a ",
        "*a",
        "!!str ",
        "1",
        "kind",
        "spec",
        "~[",
        "{{",
        "}}",
        "{{ x }}",
        "%",
        "\t",
        "\x07",
        "? ",
        "<<: ",
        "null",
        "on",
        "yes",
        "#",
        "---\n",
        "...\n",
        "\\",
        "é",
        "*",
    ]
)
VALUES = st.sampled_from(
    [
        "[1]",
        "{a: b}",
        "1",
        "null",
        "true",
        "on",
        "'~['",
        "1.5",
        "2020-01-01",
        "[]",
        "{}",
        "'{{ x }}'",
        "'{{ 1/0 }}'",
        "{1: 2}",
        "&x [*x]",
        "'['",
        "-1",
        "100%",
        "0s",
        "!!binary aGk=",
    ]
)


@st.composite
def mutated_policy(draw: st.DrawFn) -> str:
    """A valid policy with a few insertions, deletions and values replaced."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 2))
        if op == 0:
            text = text[:pos] + draw(TOKENS) + text[pos:]
        elif op == 1:
            text = text[:pos] + text[pos + draw(st.integers(1, 12)) :]
        else:
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(VALUES)}\n"
            text = "".join(lines)
    return text


@st.composite
def random_yaml(draw: st.DrawFn) -> str:
    """Random YAML documents built from policy-like keys and odd values."""
    keys = st.sampled_from(
        [
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "hosts",
            "spec",
            "gates",
            "prune",
            "match",
            "selector",
            "present",
            "absent",
            "run_apps",
            "reap",
            "retain",
            "evict",
            "at_least",
            "older_than",
            "path",
            "on",
            1,
            True,
            None,
        ]
    )
    scalars = st.one_of(
        st.sampled_from(
            [
                "ccci/v1",
                "PrunePolicy",
                "TimerPolicy",
                "StackSelector",
                "80%",
                "24h",
                "ci",
                "~x",
                "{{ y }}",
                "/var/lib/docker",
            ]
        ),
        st.integers(),
        st.booleans(),
        st.none(),
        st.text(max_size=6),
    )
    tree = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=12,
    )
    import yaml

    return yaml.safe_dump(draw(tree), allow_unicode=True)


POLICY_TEXT = st.one_of(mutated_policy(), random_yaml(), st.text(max_size=120))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "inventory.yaml").write_text(
        "all:\n  vars: {docker_data_root: /var/lib/docker, abra_dir: /root/.abra}\n"
        "  children: {ci: {hosts: {cc-ci: {}}}}\n",
        encoding="utf-8",
    )
    return root


def _write(folder: Path, text: str) -> Path:
    path = folder / "policy.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=POLICY_TEXT)
@example(text="a: &x [*x]\n")
@example(text="[" * 3000)
@example(text="kind: [1]\n")
@example(text="on: push\nkind: StackSelector\n")
@example(text="hosts: '~['\nkind: StackSelector\n")
@example(text="a: \x07\n")
def test_check_reports_any_malformed_policy_as_located_findings(folder: Path, text: str) -> None:
    path = _write(folder, text)
    report = run_check([path], folder / "inventory.yaml")
    for finding in report.findings:
        assert finding.file == str(path)
        assert finding.line >= 1 and finding.column >= 1, finding
        assert finding.message


# -- ccci's own loader ------------------------------------------------------------------

# Crashes in ccci's loader that fuzzing may tolerate: (exception, module, function). None
# now: the ones found were fixed, and their inputs are regression tests below.
KNOWN_BUGS: set[tuple[str, str, str]] = set()


def _load(path: Path) -> None:
    load_for_hosts([path], INVENTORY, list(INVENTORY.hosts.values()))


def _signature(exc: BaseException) -> tuple[str, str, str]:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/ccci/" in f.filename]
    last = frames[-1] if frames else None
    module = "ccci/" + last.filename.rsplit("/ccci/", 1)[1] if last else "?"
    return type(exc).__name__, module, last.name if last else "?"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=POLICY_TEXT)
def test_the_loader_fails_only_in_known_ways_on_fuzzed_policies(folder: Path, text: str) -> None:
    path = _write(folder, text)
    try:
        _load(path)
    except InputError as exc:
        assert exc.location.file == str(path)
    except CcciError:
        pass
    except Exception as exc:
        assert _signature(exc) in KNOWN_BUGS, "".join(traceback.format_exception(exc))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=POLICY_TEXT)
@example(text="kind: [1]\n")
def test_the_loader_refuses_any_fuzzed_policy_with_a_located_error(folder: Path, text: str) -> None:
    path = _write(folder, text)
    try:
        _load(path)
    except InputError as exc:
        assert exc.location.file == str(path)
    except CcciError:
        pass


def _refused(folder: Path, text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        _load(_write(folder, text))
    return caught.value


def test_a_control_character_is_an_input_error(folder: Path) -> None:
    assert _refused(folder, "kind: PrunePolicy\nspec: \x03\n").location.line == 2


def test_a_recursive_alias_is_an_input_error(folder: Path) -> None:
    assert _refused(folder, "kind: PrunePolicy\nspec: &x [*x]\n").location.line == 2


def test_deep_nesting_is_an_input_error(folder: Path) -> None:
    _refused(folder, "spec: " + "[" * 3000 + "]" * 3000 + "\n")


def test_a_list_as_kind_is_an_input_error(folder: Path) -> None:
    assert _refused(folder, "kind: [PrunePolicy]\n").location.field == "kind"


def test_a_yaml_boolean_key_is_an_input_error_at_its_line(folder: Path) -> None:
    text = (
        "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: a}\non: push\nspce: x\n"
        "spec: {match: x}\n"
    )
    assert _refused(folder, text).location.line == 4


def test_a_bad_host_regex_is_an_input_error(folder: Path) -> None:
    text = (
        "apiVersion: ccci/v1\nkind: StackSelector\nmetadata: {name: a}\nhosts: '~['\n"
        "spec: {match: x}\n"
    )
    assert _refused(folder, text).location.line == 4


BOMB = "\n".join(
    ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
        for prev, name in zip("abcdefg", "bcdefgh", strict=True)
    ]
)


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB + "\n", encoding="utf-8")
    code = (
        "import pathlib, sys; from ccci.config.yamlsrc import load_file; "
        "load_file(pathlib.Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], timeout=5, check=False)
