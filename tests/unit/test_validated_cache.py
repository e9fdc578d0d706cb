"""A document that passed its schema once is not validated again while nothing that decided
it changed; a failing one is validated, and reported, every time; a cache that cannot be
read or written is no cache, never an error (ccci.policy.validated).

Every test loads real policy files from tmp_path with a real state directory. The validator
is counted by wrapping ``ccci.policy.schema.validate`` (the real one still runs): the
cache's whole point is whether it is called.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccci.config.inventory import Host, Inventory
from ccci.config.yamlsrc import load_text
from ccci.policy import schema, validated
from ccci.policy.load import HostPolicies, load_for_hosts
from ccci.policy.model import PrunePolicy
from ccci.policy.validated import Uncacheable, ValidatedCache, cache_file, digest, encode
from tests.unit.cachekit import (
    BLOCKS,
    ODD_SHAPES,
    RUN_APPS,
    Counted,
    block,
    clear,
    count_calls,
    error_of,
    imports,
    janitor_plan,
    nightly_at_least,
    odd_shape,
    plant,
    policy_check,
    python,
    state_dir,
    write_inventory,
)
from tests.unit.cachekit import prune as _prune


def prune(name: str = "ci-docker-prune", at_least: str = "80%") -> str:
    """One PrunePolicy document, a disk gate and a run-app gate (a pattern the schema
    checks); ``at_least`` is the value the tests edit."""
    return _prune(name, at_least, stacks=RUN_APPS)


def _inventory() -> Inventory:
    host = Host("cc-ci", {"inventory_hostname": "cc-ci"}, ("all",))
    return Inventory({"cc-ci": host}, {"all": ("cc-ci",)}, "inventory.yaml", {})


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """How many documents the real schema validator was asked to check."""
    return count_calls(monkeypatch, schema, "validate")


@pytest.fixture(autouse=True)
def _fresh_identity() -> Iterator[None]:
    clear(validated.environment, validated._schema_digest)
    yield
    clear(validated.environment, validated._schema_digest)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return state_dir(tmp_path)


def write_policies(folder: Path, text: str, name: str = "prune.yaml") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def load(policies: Path, state: Path, limit: int = validated.MAX_ENTRIES) -> list[HostPolicies]:
    inv = _inventory()
    return load_for_hosts([policies], inv, inv.limit(None), ValidatedCache(state, limit))


def stored(state: Path) -> list[str]:
    return list(json.loads(cache_file(state).read_text(encoding="utf-8"))["digests"])


def forge(state: Path, text: str) -> None:
    """A cache that holds ``text``'s one document as passed, whatever it holds: a forged or
    stale entry, for the checks that must run all the same."""
    (doc,) = load_text(text, "prune.yaml")
    key = digest("PrunePolicy", doc.data)
    assert key is not None
    plant(cache_file(state), json.dumps({"format": 1, "digests": [key]}).encode())


# -- hits and misses ---------------------------------------------------------------------


def test_a_second_load_of_the_same_policies_does_not_validate_them_again(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    policies = write_policies(tmp_path / "policies", prune() + "---\n" + prune("other"))
    first = load(policies, state)
    assert counted.calls == 2
    # The key is the document's data as YAML built it (no template here renders anything).
    docs = load_text((policies / "prune.yaml").read_text(encoding="utf-8"), "prune.yaml")
    assert stored(state) == [digest("PrunePolicy", doc.data) for doc in docs]
    second = load(policies, state)
    assert counted.calls == 2
    assert second == first


def test_a_second_run_of_unchanged_policies_never_imports_jsonschema(
    tmp_path: Path, state: Path
) -> None:
    policies = write_policies(tmp_path / "policies", prune())
    inventory = write_inventory(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from ccci.config.inventory import load
        from ccci.policy.load import load_for_hosts
        from ccci.policy.validated import ValidatedCache

        inv = load(Path({str(inventory)!r}))
        loaded = load_for_hosts(
            [Path({str(policies)!r})], inv, inv.limit(None), ValidatedCache(Path({str(state)!r}))
        )
        print(len(loaded[0].policies), "jsonschema" in sys.modules)
        """
    )

    assert python(script) == "1 True"
    assert python(script) == "1 False"


def test_a_cli_run_of_unchanged_policies_imports_no_jsonschema_the_second_time(
    tmp_path: Path, state: Path
) -> None:
    """The run's state directory is where the CLI keeps the cache (``--state-dir``); the
    janitor fails to reach the (missing) engine after loading, as on a host whose engine is
    down, and the import log shows what loading cost."""
    policies = write_policies(tmp_path / "policies", prune())

    def imported() -> set[str]:
        done = janitor_plan(tmp_path, policies, state)
        assert "cannot reach the Docker engine" in done.stderr, done.stderr[-500:]
        return imports(done)

    assert "jsonschema" in imported()
    assert cache_file(state).is_file()
    assert "jsonschema" not in imported()


def _edited(tmp_path: Path, state: Path, at_least: str) -> Path:
    """Policies loaded once at 80%, then edited to ``at_least``: the next load's document
    is not the one the cache holds."""
    policies = write_policies(tmp_path / "policies", prune(at_least="80%"))
    load(policies, state)
    return write_policies(policies, prune(at_least=at_least))


def test_a_document_with_one_value_changed_is_validated_again(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    policies = _edited(tmp_path, state, "85%")
    (hp,) = load(policies, state)
    (policy,) = hp.policies
    assert isinstance(policy, PrunePolicy)
    assert policy.gates[0].at_least == pytest.approx(0.85)
    assert counted.calls == 2
    assert len(stored(state)) == 2


def test_an_edited_document_that_fails_reports_the_error_it_reports_without_a_cache(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    policies = _edited(tmp_path, state, "180%")
    inv = _inventory()
    without = error_of(lambda: load_for_hosts([policies], inv, inv.limit(None)))
    assert without.endswith("spec.gates.disk_usage.at_least: '180%' is not a percentage")
    # Twice: a failure is never recorded, so the second run validates and reports it again.
    assert error_of(lambda: load(policies, state)) == without
    assert error_of(lambda: load(policies, state)) == without
    assert counted.calls == 1 + 3
    assert len(stored(state)) == 1


def test_a_load_that_fails_on_one_document_still_keeps_the_ones_that_passed(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    policies = write_policies(tmp_path / "policies", prune("good") + "---\n" + prune("bad", "x"))
    error_of(lambda: load(policies, state))
    assert len(stored(state)) == 1
    write_policies(policies, prune("good"))
    load(policies, state)
    assert counted.calls == 2


def test_control_characters_are_refused_even_in_a_document_whose_schema_pass_is_cached(
    tmp_path: Path, state: Path
) -> None:
    """The cache skips the schema only: the control-character check is cheap and runs on
    every load, even for a document the cache holds as passed."""
    text = prune().replace("path: /var/lib/docker", 'path: "/var/lib/\\tdocker"')
    policies = write_policies(tmp_path / "policies", text)
    forge(state, text)
    assert "control character U+0009" in error_of(lambda: load(policies, state))


# -- what invalidates --------------------------------------------------------------------


def _schema_edited(monkeypatch: pytest.MonkeyPatch) -> None:
    edited = json.dumps({**json.loads(schema.schema_text("PrunePolicy")), "description": "more"})
    monkeypatch.setattr(schema, "schema_text", lambda kind: edited if kind == "PrunePolicy" else "")
    validated._schema_digest.cache_clear()


def _new_ccci_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = validated.environment()
    monkeypatch.setattr(validated, "__version__", "99.0.0")
    validated.environment.cache_clear()
    assert validated.environment() != before


def _another_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # What another jsonschema or RE2 does to the identity: see the subprocess test below.
    monkeypatch.setattr(validated, "environment", lambda: "another jsonschema, RE2 absent")


@pytest.mark.parametrize(
    "change",
    [_schema_edited, _new_ccci_version, _another_environment],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_change_in_what_decides_validity_validates_every_document_again(
    tmp_path: Path,
    state: Path,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[pytest.MonkeyPatch], None],
) -> None:
    policies = write_policies(tmp_path / "policies", prune())
    load(policies, state)
    change(monkeypatch)
    load(policies, state)
    load(policies, state)
    assert counted.calls == 2
    assert len(stored(state)) == 2


def _environment_in(pythonpath: Path | None, block: str = "") -> str:
    """:func:`validated.environment` in a fresh interpreter, with ``pythonpath`` first on its
    path and ``block`` (a module name) made unimportable, as Python marks a blocked import.
    It also proves that finding the libraries imports neither."""
    script = textwrap.dedent(
        f"""
        import sys
        if {block!r}:
            sys.modules[{block!r}] = None
        from ccci.policy.validated import environment
        print(environment())
        assert "jsonschema" not in sys.modules, "finding jsonschema imported it"
        assert sys.modules.get("re2") is None, "finding re2 imported it"
        """
    )
    return python(script, pythonpath)


def test_another_jsonschema_or_re2_install_or_re2_missing_changes_the_identity(
    tmp_path: Path,
) -> None:
    """Each library is named by where it would be imported from and that file's size and
    mtime: an upgrade in place, another install ahead on the path, or no RE2 at all."""
    shadow = tmp_path / "shadow"
    (shadow / "jsonschema").mkdir(parents=True)
    plain = _environment_in(None)
    assert "re2 absent" not in plain  # the project installs google-re2
    (shadow / "jsonschema" / "__init__.py").write_text("# another jsonschema\n")
    other_jsonschema = _environment_in(shadow)
    (shadow / "jsonschema" / "__init__.py").write_text("# another jsonschema, upgraded\n")
    upgraded = _environment_in(shadow)
    (shadow / "jsonschema" / "__init__.py").unlink()
    (shadow / "jsonschema").rmdir()
    (shadow / "re2.py").write_text("# another re2\n")
    other_re2 = _environment_in(shadow)
    no_re2 = _environment_in(None, block="re2")
    assert "re2 absent" in no_re2
    identities = [plain, other_jsonschema, upgraded, other_re2, no_re2]
    assert len(set(identities)) == len(identities)
    assert _environment_in(None) == plain


# -- a cache that cannot be trusted, read or written --------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"\x00\xffnot json", b'{"format": 1, "digests": "abc"}', b"[1, 2]", b'{"format": 0}'],
    ids=["binary", "digests-not-a-list", "not-a-mapping", "older-format"],
)
def test_a_corrupt_cache_file_is_ignored_and_written_anew(
    tmp_path: Path, state: Path, counted: Counted, content: bytes
) -> None:
    policies = write_policies(tmp_path / "policies", prune())
    plant(cache_file(state), content)
    load(policies, state)
    assert counted.calls == 1
    assert len(stored(state)) == 1
    load(policies, state)
    assert counted.calls == 1


def test_a_cache_file_others_may_write_is_not_trusted(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    policies = write_policies(tmp_path / "policies", prune())
    load(policies, state)
    cache_file(state).chmod(0o622)
    load(policies, state)
    assert counted.calls == 2


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_a_cache_file_that_is_a_symlink_or_a_fifo_is_not_read(
    tmp_path: Path, state: Path, counted: Counted, shape: str
) -> None:
    """A link is never followed (even to a cache this user wrote) and a FIFO never waited
    on; the run validates, and its save puts a regular file in their place."""
    policies = write_policies(tmp_path / "policies", prune())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    load(policies, elsewhere)
    odd_shape(cache_file(state), shape, cache_file(elsewhere))
    load(policies, state)
    assert counted.calls == 2
    assert cache_file(state).is_file() and not cache_file(state).is_symlink()
    load(policies, state)
    assert counted.calls == 2


@pytest.mark.parametrize("how", BLOCKS, ids=["cache_folder_is_a_file", "cache_file_is_a_folder"])
def test_a_cache_that_cannot_be_read_or_written_is_no_cache_and_no_error(
    tmp_path: Path, state: Path, counted: Counted, how: str
) -> None:
    """Real refusals of the file system: the same policies, the same result, validated
    each time."""
    policies = write_policies(tmp_path / "policies", prune())
    block(state, cache_file(state), how)
    first = load(policies, state)
    assert load(policies, state) == first
    assert counted.calls == 2
    assert list((state).iterdir()) == [state / "cache"]


def test_a_missing_state_dir_is_no_cache_and_is_not_created(
    tmp_path: Path, counted: Counted
) -> None:
    policies = write_policies(tmp_path / "policies", prune())
    missing = tmp_path / "no-state"
    load(policies, missing)
    load(policies, missing)
    assert counted.calls == 2
    assert not missing.exists()


# -- the bound -----------------------------------------------------------------------------


def _documents(*names: str) -> str:
    return "---\n".join(prune(name) for name in names)


def test_the_cache_keeps_only_the_most_recently_used_entries(
    tmp_path: Path, state: Path, counted: Counted
) -> None:
    policies = tmp_path / "policies"
    write_policies(policies, _documents("a-one", "a-two", "a-three"))
    load(policies, state, limit=4)
    first = stored(state)
    write_policies(policies, _documents("b-one", "b-two", "b-three"))
    load(policies, state, limit=4)
    kept = stored(state)
    assert len(kept) == 4
    # The newest set whole, and of the older one only its last.
    assert kept[0] == first[-1]
    assert set(kept).isdisjoint(first[:2])
    assert counted.calls == 6
    # What was kept is not validated again, what was dropped is.
    write_policies(policies, _documents("a-three", "b-one"))
    load(policies, state, limit=4)
    assert counted.calls == 6
    write_policies(policies, _documents("a-one"))
    load(policies, state, limit=4)
    assert counted.calls == 7


def test_a_policy_repo_that_changes_every_night_for_a_year_keeps_the_cache_bounded(
    tmp_path: Path, state: Path
) -> None:
    policies = tmp_path / "policies"
    for night in range(365):
        write_policies(policies, prune(at_least=nightly_at_least(night)))
        load(policies, state, limit=100)
    assert len(stored(state)) == 100
    assert cache_file(state).stat().st_size < 100 * 70


# -- policy check never reads it ------------------------------------------------------------


def test_policy_check_reports_an_error_the_cache_would_have_passed(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged entry holds the failing document as passed, and ``ccci policy check`` still
    finds its error (and never opens the state directory's cache at all)."""
    text = prune(at_least="180%")
    policies = write_policies(tmp_path / "policies", text)
    forge(state, text)

    def never(_self: ValidatedCache) -> list[str]:
        raise AssertionError("policy check read the validation cache")

    monkeypatch.setattr(ValidatedCache, "_read", never)
    monkeypatch.chdir(tmp_path)
    result = policy_check(tmp_path, policies, state)
    assert result.exit_code == 1, result.output
    assert "'180%' is not a percentage" in result.output


# -- the key ---------------------------------------------------------------------------------

TYPED = """\
when: 2026-11-27
at: 2026-11-27T03:00:00Z
1: int key
true: bool key
null: null key
1.5: float key
nested: [[1, [2, [3]]], {a: [yes, no, ~]}]
"""


def test_equal_yaml_encodes_equally_with_dates_and_keys_of_every_type() -> None:
    first, second = yaml.safe_load(TYPED), yaml.safe_load(TYPED)
    assert first is not second
    assert encode(first) == encode(second)
    assert isinstance(first["when"], date) and True in first and 1.5 in first


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (1, True),
        (1, "1"),
        (1, 1.0),
        (0, False),
        (None, "None"),
        ("", []),
        ([], {}),
        ([], ()),
        (date(2026, 11, 27), "2026-11-27"),
        (date(2026, 11, 27), datetime(2026, 11, 27)),
        (datetime(2026, 11, 27), datetime(2026, 11, 27, tzinfo=UTC)),
        (b"ab", "ab"),
        (["ab"], ["a", "b"]),
        (["a", "b"], ["a:b"]),
        ({"a": "b", "c": "d"}, {"c": "d", "a": "b"}),
        ({"a": ["b"]}, {"a": "b"}),
        ({1: "x"}, {"1": "x"}),
        ({True: "x"}, {1: "x"}),
        ({"k": "n;s1:v"}, {"k": None, "s1": "v"}),
    ],
)
def test_different_values_encode_apart(one: Any, other: Any) -> None:
    assert encode(one) != encode(other)
    assert encode({"spec": one}) != encode({"spec": other})


def test_a_set_or_an_object_is_not_cached_and_the_document_is_validated_each_time() -> None:
    """A set's order changes with the hash seed; an object's repr may name its address."""
    for value in ({"a", "b"}, object(), frozenset()):
        with pytest.raises(Uncacheable):
            encode({"spec": [value]})
        assert digest("PrunePolicy", {"spec": value}) is None


def test_a_digest_is_the_same_in_every_process_whatever_the_hash_seed() -> None:
    script = (
        "import yaml; from ccci.policy.validated import digest; "
        f"print(digest('PrunePolicy', yaml.safe_load({TYPED!r})))"
    )

    def in_process(seed: str) -> str:
        return python(script, env={**os.environ, "PYTHONHASHSEED": seed})

    assert in_process("1") == in_process("2") == digest("PrunePolicy", yaml.safe_load(TYPED))
