"""A file that parsed once is not parsed again while neither its bytes nor what decides its
documents changed, and then PyYAML is never imported; a file with a YAML error is parsed,
and reported, every time; a cache that cannot be trusted, read or written is no cache,
never an error (ccci.config.yamlcache, over ccci.state.cachefile).

Every test reads real files from tmp_path with a real state directory. The parser is
counted by wrapping ``ccci.config.yamlsrc.parse`` (the real one still runs): the cache's
whole point is whether it is called.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from ccci.config import inventory as inventory_mod
from ccci.config import yamlcache, yamlsrc
from ccci.config.yamlcache import ParsedCache, Uncacheable, cache_file, decode, encode, pack
from ccci.config.yamlsrc import Document, load_file
from ccci.policy import files
from ccci.policy.validated import encode as exact
from ccci.state import cachefile
from tests.unit.cachekit import (
    BLOCKS,
    ODD_SHAPES,
    Counted,
    block,
    clear,
    count_calls,
    error_of,
    imports,
    janitor_plan,
    messages,
    nightly_at_least,
    odd_shape,
    plant,
    policy_check,
    python,
    state_dir,
    write_inventory,
)
from tests.unit.cachekit import prune as _prune

# Every value YAML's safe loader makes under text keys, and a key that is JSON's tag.
TYPED = """\
# a comment first, so the document does not start on line 1
kind: Typed
when: 2026-11-27
at: 2026-11-27T03:00:00Z
east: 2026-11-27 03:00:00.250+05:30
naive: 2026-11-27 03:00:00
big: 123456789012345678901234567890
ratio: -0.0
far: .inf
near: -.inf
odd: .nan
blob: !!binary aGVsbG8=
none: ~
yes_no: [yes, no, on, off]
text: "tab\\there, \\u00e9, \\ud83d\\ude00 and a lone \\ud800"
"\\0": a key that is the tag
nested: [[1, [2, [3]]], {b: 2, a: [yes, no, ~]}, []]
empty: {}
---
second: document
"""


def prune(name: str = "ci-docker-prune", at_least: str = "80%") -> str:
    """One PrunePolicy document, one gate; ``at_least`` is the value the tests edit."""
    return _prune(name, at_least)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """How many files the real parser was asked to parse."""
    return count_calls(monkeypatch, yamlsrc, "parse")


@pytest.fixture(autouse=True)
def _fresh_identity() -> Iterator[None]:
    clear(yamlcache.environment)
    yield
    clear(yamlcache.environment)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return state_dir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path, state: Path, limit: int = yamlcache.MAX_ENTRIES) -> list[Document]:
    """One run's load of one file: a cache read from the state directory, then saved."""
    parsed = ParsedCache(state, limit)
    try:
        return load_file(path, "shown/" + path.name, parsed)
    finally:
        parsed.save()


def stored(state: Path) -> list[str]:
    return [key for key, _ in json.loads(cache_file(state).read_text("utf-8"))["entries"]]


def same(one: list[Document], other: list[Document]) -> None:
    """Equal documents down to every value's type and every mapping's order."""
    assert [(d.file, d.index, d.line, d.lines, d.sensitive) for d in one] == [
        (d.file, d.index, d.line, d.lines, d.sensitive) for d in other
    ]
    assert [exact(d.data) for d in one] == [exact(d.data) for d in other]
    assert [list(d.lines) for d in one] == [list(d.lines) for d in other]


# -- hits and misses ---------------------------------------------------------------------


def test_a_second_load_gives_the_documents_a_fresh_parse_gives_without_parsing(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    path = write(tmp_path / "typed.yaml", TYPED)
    fresh = load_file(path, "shown/typed.yaml")
    first = load(path, state)
    second = load(path, state)
    assert counted.calls == 2  # the fresh parse and the first load
    same(first, fresh)
    same(second, fresh)
    data = second[0].data
    assert list(data)[:4] == ["kind", "when", "at", "east"]
    assert type(data["when"]) is date and data["at"] == datetime(2026, 11, 27, 3, tzinfo=UTC)
    assert data["east"].utcoffset() == timedelta(hours=5, minutes=30)
    assert data["naive"].tzinfo is None and data["big"] == 123456789012345678901234567890
    assert math.copysign(1, data["ratio"]) == -1 and math.isnan(data["odd"])
    assert data["far"] == math.inf and data["blob"] == b"hello" and data["\0"]
    assert second[0].line == 2 and second[0].line_of(("nested", 1, "a", 2)) == 17
    assert second[1].index == 1 and second[1].line == 20
    # Fresh values each time: what one load's caller changes, the next does not see.
    second[0].data["nested"].append("changed")
    assert load(path, state)[0].data["nested"] == fresh[0].data["nested"]


def test_a_second_load_of_the_same_inventory_and_policies_imports_no_yaml(
    tmp_path: Path, state: Path
) -> None:
    policies = tmp_path / "policies"
    write(policies / "prune.yaml", prune())
    write(policies / "typed.yaml", TYPED)
    inventory = write_inventory(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from ccci.config import inventory
        from ccci.config.yamlcache import ParsedCache
        from ccci.policy.files import read

        parsed = ParsedCache(Path({str(state)!r}))
        inv = inventory.load(Path({str(inventory)!r}), parsed)
        docs = read([Path({str(policies)!r})], parsed)
        parsed.save()
        print(list(inv.hosts), len(docs), "yaml" in sys.modules)
        """
    )

    assert python(script) == "['cc-ci'] 3 True"
    assert python(script) == "['cc-ci'] 3 False"
    assert len(stored(state)) == 3


def _twice(tmp_path: Path, policies: Path, state: Path) -> list[CompletedProcess[str]]:
    """The same janitor plan run twice over one state directory: the second run is the one
    the cache serves."""
    return [janitor_plan(tmp_path, policies, state) for _ in range(2)]


def test_a_janitor_run_of_unchanged_files_imports_no_yaml_the_second_time(
    tmp_path: Path, state: Path
) -> None:
    policies = tmp_path / "policies"
    write(policies / "prune.yaml", prune())
    first, second = _twice(tmp_path, policies, state)
    assert "cannot reach the Docker engine" in first.stderr, first.stderr[-500:]
    assert "yaml" in imports(first)
    assert "yaml" not in imports(second)
    assert messages(second) == messages(first)
    # The inventory and the policy file; nothing new the second time.
    assert len(stored(state)) == 2


def test_a_run_whose_policies_fail_to_load_still_keeps_the_inventory(
    tmp_path: Path, state: Path
) -> None:
    first, second = _twice(tmp_path, tmp_path / "missing", state)
    assert "missing: no such file or directory" in first.stderr, first.stderr[-500:]
    assert "yaml" in imports(first)
    assert "yaml" not in imports(second)
    assert messages(second) == messages(first)
    assert len(stored(state)) == 1


def test_a_schema_error_in_a_cached_document_names_its_file_line_and_field(
    tmp_path: Path, state: Path
) -> None:
    policies = tmp_path / "policies"
    write(policies / "prune.yaml", prune() + "---\n" + prune("other", at_least="180%"))
    first, second = _twice(tmp_path, policies, state)
    assert first.returncode == second.returncode != 0
    assert "yaml" in imports(first) and "yaml" not in imports(second)
    # Line 24: the second document's at_least (14 lines each, one separator).
    wanted = f"{policies / 'prune.yaml'}:24: spec.gates.disk_usage.at_least"
    assert any(wanted in line for line in messages(first)), messages(first)
    assert messages(second) == messages(first)


def test_an_edited_file_is_parsed_again_and_its_new_values_are_used(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    path = write(tmp_path / "prune.yaml", prune(at_least="80%"))
    load(path, state)
    write(path, prune(at_least="85%"))
    (doc,) = load(path, state)
    assert doc.value_at(("spec", "gates", "disk_usage", "at_least")) == "85%"
    (doc,) = load(path, state)
    assert doc.value_at(("spec", "gates", "disk_usage", "at_least")) == "85%"
    assert counted.calls == 2
    assert len(stored(state)) == 2


def test_the_same_bytes_under_another_name_carry_that_name(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    one = write(tmp_path / "one.yaml", prune())
    other = write(tmp_path / "other.yaml", prune())
    load(one, state)
    (doc,) = load(other, state)
    assert counted.calls == 1
    assert doc.file == "shown/other.yaml"
    assert str(doc.location(("spec",))) == "shown/other.yaml:6: spec"


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, 2\n",
        "a: 1\na: 2\n",
        "1: not text\n",
        "a: &x [*x]\n",
        "a: b\n\x07c: d\n",
    ],
    ids=["unclosed", "duplicate-key", "number-key", "self-alias", "control-character"],
)
def test_a_file_with_a_yaml_error_is_parsed_and_reported_alike_every_time(
    tmp_path: Path, state: Path, counted: Counted, text: str
) -> None:
    path = write(tmp_path / "bad.yaml", text)
    without = error_of(lambda: load_file(path, "shown/bad.yaml"))
    assert without.startswith("shown/bad.yaml:")
    assert error_of(lambda: load(path, state)) == without
    assert error_of(lambda: load(path, state)) == without
    assert counted.calls == 3
    assert not cache_file(state).exists()


def test_a_file_that_is_not_utf8_or_too_large_is_refused_alike_with_the_cache(
    tmp_path: Path, state: Path
) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"a: \xff\n")
    large = write(tmp_path / "large.yaml", "#" * (yamlsrc.MAX_FILE_BYTES + 1))
    for path in (binary, large):
        without = error_of(partial(load_file, path, "shown/" + path.name))
        assert error_of(partial(load, path, state)) == without
    assert not cache_file(state).exists()


@pytest.mark.parametrize(
    "text", ["s: !!set {a, b}\n", "o: !!omap [{a: 1}, {b: 2}]\n"], ids=["set", "pairs"]
)
def test_a_file_with_a_value_json_cannot_carry_exactly_is_parsed_every_time(
    tmp_path: Path, state: Path, counted: Counted, text: str
) -> None:
    path = write(tmp_path / "odd.yaml", text)
    first = load(path, state)
    assert load(path, state)[0].data == first[0].data
    assert counted.calls == 2
    assert not cache_file(state).exists()


# -- what invalidates --------------------------------------------------------------------


def _new_ccci_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(yamlcache, "__version__", "99.0.0")


def _edited_loader_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The identity reads yamlsrc's file; here a copy of it with one more line.
    edited = tmp_path / "yamlsrc.py"
    shutil.copy(str(yamlsrc.__file__), edited)
    with edited.open("a", encoding="utf-8") as stream:
        stream.write("# edited\n")
    monkeypatch.setattr(yamlsrc, "__file__", str(edited))


def _another_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # What another PyYAML does to the identity: see the subprocess test below.
    monkeypatch.setattr(cachefile, "library_identity", lambda name: f"{name} elsewhere")


@pytest.mark.parametrize(
    "change",
    [_new_ccci_version, _edited_loader_source, _another_yaml],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_change_in_what_decides_the_documents_parses_every_file_again(
    tmp_path: Path,
    state: Path,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[pytest.MonkeyPatch, Path], None],
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    before = yamlcache.environment()
    load(path, state)
    change(monkeypatch, tmp_path)
    yamlcache.environment.cache_clear()
    assert yamlcache.environment() != before
    load(path, state)
    load(path, state)
    assert counted.calls == 2
    assert len(stored(state)) == 2


def _environment_in(pythonpath: Path | None) -> str:
    """:func:`yamlcache.environment` in a fresh interpreter with ``pythonpath`` first on its
    path; it also proves that finding PyYAML does not import it."""
    script = textwrap.dedent(
        """
        import sys
        from ccci.config.yamlcache import environment
        sys.stdout.write(environment().decode())
        assert "yaml" not in sys.modules, "finding yaml imported it"
        """
    )
    return python(script, pythonpath)


def test_another_pyyaml_install_or_an_upgrade_in_place_changes_the_identity(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "yaml").mkdir(parents=True)
    plain = _environment_in(None)
    (shadow / "yaml" / "__init__.py").write_text("# another yaml\n")
    other = _environment_in(shadow)
    (shadow / "yaml" / "__init__.py").write_text("# another yaml, upgraded\n")
    upgraded = _environment_in(shadow)
    assert len({plain, other, upgraded}) == 3
    assert _environment_in(None) == plain


# -- a cache that cannot be trusted, read or written --------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xffnot json",
        b'{"format": 1, "entries": "abc"}',
        b"[1, 2]",
        b'{"format": 0, "entries": []}',
        b'{"format": 1, "entries": [["short", "[]"], [1, 2]]}',
    ],
    ids=["binary", "entries-not-a-list", "not-a-mapping", "older-format", "odd-entries"],
)
def test_a_corrupt_cache_file_is_ignored_and_written_anew(
    tmp_path: Path, state: Path, counted: Counted, content: bytes
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    plant(cache_file(state), content)
    load(path, state)
    assert counted.calls == 1
    assert len(stored(state)) == 1
    load(path, state)
    assert counted.calls == 1


@pytest.mark.parametrize("entry", ["not json", "[[0, 1]]", '[[0, 1, {"\\u0000": ["?", 1]}, []]]'])
def test_an_entry_that_does_not_decode_is_parsed_and_replaced(
    tmp_path: Path, state: Path, counted: Counted, entry: str
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    fresh = load(path, state)
    (key,) = stored(state)
    text = json.dumps({"format": yamlcache.FORMAT, "entries": [[key, entry]]})
    cache_file(state).write_text(text, encoding="utf-8")
    same(load(path, state), fresh)
    same(load(path, state), fresh)
    assert counted.calls == 2


def test_a_cache_file_others_may_write_is_not_trusted(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    load(path, state)
    cache_file(state).chmod(0o622)
    load(path, state)
    assert counted.calls == 2


def test_only_a_regular_file_of_this_user_that_no_one_else_may_write_is_trusted(
    tmp_path: Path,
) -> None:
    """Owner and mode as ``fstat`` reports them (a real file of another user needs root)."""
    mine = os.stat(write(tmp_path / "mine", "x"))
    assert cachefile.trusted(mine)

    def like(mode: int, uid: int) -> os.stat_result:
        fields = list(mine)
        fields[stat.ST_MODE], fields[stat.ST_UID] = mode, uid
        return os.stat_result(fields)

    me = os.geteuid()
    assert cachefile.trusted(like(mine.st_mode, me))
    assert not cachefile.trusted(like(mine.st_mode, me + 1))
    assert not cachefile.trusted(like(mine.st_mode | 0o020, me))
    assert not cachefile.trusted(like(mine.st_mode | 0o002, me))
    assert not cachefile.trusted(os.stat(tmp_path))


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_a_cache_file_that_is_a_symlink_or_a_fifo_is_not_read(
    tmp_path: Path, state: Path, counted: Counted, shape: str
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    load(path, elsewhere)
    odd_shape(cache_file(state), shape, cache_file(elsewhere))
    load(path, state)
    assert counted.calls == 2
    assert cache_file(state).is_file() and not cache_file(state).is_symlink()
    load(path, state)
    assert counted.calls == 2


@pytest.mark.parametrize("how", BLOCKS)
def test_a_cache_that_cannot_be_read_or_written_is_no_cache_and_no_error(
    tmp_path: Path, state: Path, counted: Counted, how: str
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    block(state, cache_file(state), how)
    first = load(path, state)
    same(load(path, state), first)
    assert counted.calls == 2
    assert list(state.iterdir()) == [state / "cache"]


def test_a_missing_state_dir_is_no_cache_and_is_not_created(
    tmp_path: Path, counted: Counted
) -> None:
    path = write(tmp_path / "prune.yaml", prune())
    missing = tmp_path / "no-state"
    load(path, missing)
    load(path, missing)
    assert counted.calls == 2
    assert not missing.exists()


def test_the_written_cache_is_this_users_alone(tmp_path: Path, state: Path) -> None:
    load(write(tmp_path / "prune.yaml", prune()), state)
    assert cache_file(state).stat().st_mode & 0o777 == 0o600
    assert cache_file(state).parent.stat().st_mode & 0o777 == 0o700


# -- the bound -----------------------------------------------------------------------------


def test_the_cache_keeps_only_the_most_recently_used_files(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    paths = [write(tmp_path / f"p{i}.yaml", prune(f"p-{i}")) for i in range(6)]
    parsed = ParsedCache(state, limit=4)
    for path in paths[:3]:
        load_file(path, path.name, parsed)
    parsed.save()
    first = stored(state)
    parsed = ParsedCache(state, limit=4)
    for path in paths[3:]:
        load_file(path, path.name, parsed)
    parsed.save()
    kept = stored(state)
    # The newest run's files whole, and of the older run's only its last.
    assert len(kept) == 4 and kept[0] == first[-1]
    assert counted.calls == 6
    # What was kept is not parsed again, what was dropped is.
    load(paths[2], state, limit=4)
    load(paths[5], state, limit=4)
    assert counted.calls == 6
    load(paths[0], state, limit=4)
    assert counted.calls == 7


def test_a_policy_repo_that_changes_every_night_for_a_year_keeps_the_cache_bounded(
    tmp_path: Path, state: Path
) -> None:
    path = tmp_path / "prune.yaml"
    for night in range(365):
        write(path, prune(at_least=nightly_at_least(night)))
        load(path, state, limit=100)
    assert len(stored(state)) == 100


def test_the_cache_file_stays_within_its_size_by_dropping_the_oldest_files(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlcache, "MAX_BYTES", 8 * 1024)
    for night in range(20):
        load(write(tmp_path / "prune.yaml", prune(f"night-{night}")), state)
    assert 0 < len(stored(state)) < 20
    assert cache_file(state).stat().st_size <= 8 * 1024


def test_a_file_whose_documents_are_too_large_to_keep_is_parsed_every_time(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    path = write(tmp_path / "large.yaml", "".join(f"k{i}: {'v' * 60}\n" for i in range(1200)))
    load(path, state)
    load(path, state)
    assert counted.calls == 2
    assert not cache_file(state).exists()


# -- policy check never reads it ------------------------------------------------------------


def test_policy_check_and_the_default_loaders_never_read_the_cache(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies"
    path = write(policies / "prune.yaml", prune())
    load(path, state)

    def never(_self: ParsedCache) -> list[tuple[str, str]]:
        raise AssertionError("read the parse cache")

    monkeypatch.setattr(ParsedCache, "_read", never)
    monkeypatch.chdir(tmp_path)
    result = policy_check(tmp_path, policies, state)
    assert result.exit_code == 0, result.output
    assert files.read([policies]) and inventory_mod.load(tmp_path / "inventory.yaml").hosts


# -- the codec -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {2: "int key", True: "bool key", None: "null key", 1.5: "float key", "s": "text key"},
        {date(2026, 11, 27): "date key", datetime(2026, 11, 27, 3): "datetime key"},
        {"\0": None, "a": 1},
        [{"\0": ["m", []]}],
        {"a": {"\0": ["d", "2026-11-27"]}},
        datetime(2026, 11, 27, 3, 0, 0, 5, tzinfo=timezone(timedelta(hours=-3))),
        [b"", b"\x00\xff", "", 0, -1, 2**70, 0.1, 1e300, False, None, [], {}],
    ],
    ids=["scalar-keys", "date-keys", "tag-key", "tag-lookalike", "nested-tag", "offset", "flat"],
)
def test_values_of_every_yaml_type_come_back_exactly(value: Any) -> None:
    doc = Document("f.yaml", 0, 1, value, {(): 1, ("a", 0, "b"): 2})
    (back,) = decode(encode([doc]), "f.yaml")
    assert exact(back.data) == exact(value)
    assert back.lines == doc.lines and list(back.lines) == list(doc.lines)


@pytest.mark.parametrize(
    "value",
    [{"a", "b"}, ("a", "b"), object(), datetime(2026, 1, 1, fold=1)],
    ids=["set", "tuple", "object", "fold"],
)
def test_a_value_yaml_does_not_make_is_not_encoded(value: Any) -> None:
    with pytest.raises(Uncacheable):
        pack({"spec": [value]})
