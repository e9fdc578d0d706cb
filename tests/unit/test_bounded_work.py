"""Policies come from PRs and engine names from recipes: neither may make ccci work for
ever. Policy regexes run in linear time (RE2), templates have a size, loop and time
budget, and policy check's own regex reasoning gives up, saying so, at its budget.

No test here measures time: each hostile input either ends in a one-line error or in an
answer, and a guard stops the test (instead of hanging the suite) if that regresses.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ccci.config.inventory import Host, Inventory
from ccci.config.yamlsrc import load_text
from ccci.errors import InputError
from ccci.facts.model import Daemon, DiskUsage, Facts, Service
from ccci.plan.build import plan_host
from ccci.policy.load import load_for_hosts
from ccci.policy.model import OrphanStackPolicy
from ccci.review import regexlang
from ccci.review.meanings.base import pattern_change
from ccci.saferegex import compile_policy

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
REDOS = "^([a-z0-9]+)+-[0-9a-f]{6}_ci_"
# 34 characters that almost match: Python's backtracking re needs about 2**28 steps.
LONG_STACK = "a" * 33 + "!"


@contextmanager
def guard(seconds: int = 60) -> Iterator[None]:
    """Fail instead of hanging when a bound regresses (not a measure of speed)."""

    def stop(_signum: int, _frame: object) -> None:
        raise AssertionError(f"still running after {seconds}s: the work is not bounded")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _host(**variables: object) -> Host:
    return Host("cc-ci", {"inventory_hostname": "cc-ci", **variables}, ("all",))


def _load(tmp_path: Path, text: str, **variables: object) -> list[object]:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    host = _host(**variables)
    inventory = Inventory({"cc-ci": host}, {"all": ("cc-ci",)}, "inventory.yaml")
    (loaded,) = load_for_hosts([path], inventory, [host])
    return list(loaded.policies)


ORPHANS = """\
apiVersion: ccci/v1
kind: OrphanStackPolicy
metadata: {{name: reap}}
spec:
  run_apps: {{match: '{pattern}'}}
  orphan_after: 3h
  reap: [services]
"""


def test_the_redos_selector_against_a_long_stack_name_plans_to_the_end(tmp_path: Path) -> None:
    (policy,) = _load(tmp_path, ORPHANS.format(pattern=REDOS))
    assert isinstance(policy, OrphanStackPolicy)
    old = NOW - timedelta(hours=5)
    service = Service(
        "s1", f"{LONG_STACK}_app", "redis", {"com.docker.stack.namespace": LONG_STACK}, old, old
    )
    facts = Facts(
        host="cc-ci",
        gathered_at=NOW,
        daemon=Daemon("cc-ci", "26.1.5", "1.45", "/var/lib/docker", "overlay2", "active", True),
        disks=(DiskUsage("/var/lib/docker", 100, 50, 50),),
        services=(service,),
    )

    with guard():
        plan = plan_host("cc-ci", (policy,), facts, NOW)
        assert policy.run_apps_pattern.search(LONG_STACK) is None

    assert not plan.changes  # the name is not a run-app: nothing is reaped


def test_a_policy_regex_is_run_by_a_linear_time_matcher() -> None:
    matcher = compile_policy(REDOS)
    with guard():
        assert matcher.search("a" * 100_000 + "!") is None
    assert matcher.search("redi-3fa9c1_ci_example_org") is not None


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"^(redi)-\1", "no back-references or look-arounds"),
        (r"^(?=redi)", "no back-references or look-arounds"),
        ("x" * 1001, "too long: 1001 characters"),
        ("([", "is not a regular expression: "),
    ],
)
def test_a_pattern_only_backtracking_could_run_is_refused_at_its_line(
    tmp_path: Path, pattern: str, says: str
) -> None:
    with pytest.raises(InputError) as caught:
        _load(tmp_path, ORPHANS.format(pattern=pattern.replace("'", "''")))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/policy.yaml:5: spec.run_apps.match: ")
    assert says in message
    assert "\n" not in message


def test_policy_checks_regex_reasoning_gives_up_at_its_budget_and_says_so() -> None:
    with guard():
        comparison = regexlang.compare("(a|b)*a[ab]{20}", "(a|b)*b[ab]{20}")
        text, _ = pattern_change("(a|b)*a[ab]{20}", "(a|b)*b[ab]{20}")
    assert comparison.gave_up and not comparison.known
    assert f"gave up comparing after {regexlang.BUDGET:,} steps" in text
    # Within the budget the answer is still exact.
    assert regexlang.compare("^a", "^ab").narrower


TEMPLATE_BOMBS = [
    pytest.param(
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "over budget: loops over more than 100,000 items",
        id="nested_ranges",
    ),
    pytest.param("{{ (10|int)**(10**8) }}", "a number of more than 4096 bits", id="huge_power"),
    pytest.param("{{ 'a'*10**9 }}", "more than 100,000 characters", id="gigabyte_string"),
    pytest.param("{{ [1]*10**8 }}", "more than 100,000 characters", id="huge_list"),
    pytest.param("{{ '{:>999999999}'.format('a') }}", "format width", id="format_width"),
    pytest.param("{{ '%999999999s' % 'a' }}", "format width", id="percent_width"),
    pytest.param("{{ 'a'|center(999999999) }}", "filter center: an argument", id="center_filter"),
    pytest.param("{{ 'a'.center(10**9) }}", "an argument over 100,000", id="center_method"),
    pytest.param(
        "{{ ('a'*99999)|replace('a', 'a'*99999) }}", "more than 100,000", id="replace_growth"
    ),
    pytest.param(
        "{% for a in 'b'*99999 %}{% for c in 'b'*99999 %}{% endfor %}{% endfor %}",
        "took longer than 2s",
        id="nested_string_loops",
    ),
]


@pytest.mark.parametrize(("template", "says"), TEMPLATE_BOMBS)
def test_a_template_over_its_budget_is_a_one_line_located_error(template: str, says: str) -> None:
    from ccci.policy.template import render

    (doc,) = load_text(f'spec:\n  path: "{template}"\n', "policy.yaml")
    with guard(), pytest.raises(InputError) as caught:
        render(doc, {}, "cc-ci")
    assert str(caught.value).startswith("policy.yaml:2: spec.path: cannot render for host cc-ci: ")
    assert says in str(caught.value)


def test_templates_within_the_budget_render_as_before() -> None:
    from ccci.policy.template import render

    (doc,) = load_text(
        'a: "{{ n|int + 1 }}"\nb: "{% for i in range(3) %}{{ i }}{% endfor %}"\n'
        "c: \"{{ '-' * 20 }}\"\nd: \"{{ '%s-%s' % (n, n) }}\"\n",
        "policy.yaml",
    )
    assert render(doc, {"n": "41"}, "cc-ci").data == {
        "a": 42,
        "b": "012",
        "c": "-" * 20,
        "d": "41-41",
    }
