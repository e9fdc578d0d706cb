"""A plan imports only the rules its policies' kinds need (ccci.plan.build.RULES), and the
fingerprints only when it takes them: the janitor, which plans only OrphanStackPolicy,
starts without the other rules and what they import (issue 13, a fast start).

Importing late must not change a plan, so each test runs in a fresh interpreter, where the
first plan of a kind is the one that imports its rule.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.unit.cachekit import python

RULES = Path(__file__).resolve().parents[1] / "rules"
REAP = RULES / "orphans" / "orphans_reap_an_old_run_app_and_everything_it_left.yaml"

# What the janitor's plan never needs: the other kinds' rules, the reference grammar and
# unit files they read, the fingerprints of a saved plan, an apply's results and the masks
# (a template asks only ccci.render.secretname).
NOT_FOR_THE_JANITOR = (
    "ccci.rules.daemon",
    "ccci.rules.timers",
    "ccci.rules.prune",
    "ccci.rules.retention",
    "ccci.facts.refs",
    "ccci.systemd.units",
    "ccci.plan.fingerprint",
    "ccci.plan.results",
    "ccci.render.redact",
)

# Plans every rule fixture (kinds interleaved, so each kind's first plan comes after other
# kinds' plans) and one plan of every kind together, and prints each plan's JSON.
PLAN_ALL = """
import json, sys, tempfile
from pathlib import Path
{preamble}
from tests.rules.test_rule_cases import KINDS, load_case, facts_from_fixture, fixture_host
from tests.rules.test_rule_cases import policies_from_text, HOST, _now
from tests.unit.test_unused_kinds import FILES
from ccci.plan.build import plan_host
from ccci.plan.model import Plan

rules = Path({rules!r})
by_kind = [sorted((rules / kind).glob("*.yaml")) for kind in KINDS]
paths = [p for row in __import__("itertools").zip_longest(*by_kind) for p in row if p]
folder = Path({folder!r})
plans = {{}}
for path in [*paths, None]:
    case = load_case(path if path else Path({reap!r}))
    now = _now(case)
    host = fixture_host({{"docker_data_root": "/var/lib/docker", "abra_dir": "/tmp/abra",
                          **case.get("host_vars", {{}})}})
    text = case["policy"] if path else "---\\n".join(FILES.values())
    policies = policies_from_text(text, folder, host)
    facts = facts_from_fixture(case.get("facts"), now)
    plan = Plan(now=now, hosts=(plan_host(HOST, policies, facts, now),))
    plans[path.name if path else "every kind"] = plan.to_json()
print(json.dumps(plans))
"""


def test_a_janitor_plan_imports_no_other_kinds_rule_nor_fingerprints(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tests.rules.test_rule_cases import load_case, facts_from_fixture, fixture_host
        from tests.rules.test_rule_cases import policies_from_text, HOST, _now
        from ccci.plan.build import plan_host
        from ccci.plan.model import Plan
        from ccci.render.style import Style
        from ccci.render.text import render_plan

        case = load_case(Path({str(REAP)!r}))
        now = _now(case)
        host = fixture_host(case.get("host_vars"))
        policies = policies_from_text(case["policy"], Path({str(tmp_path)!r}), host)
        facts = facts_from_fixture(case.get("facts"), now)
        plan = plan_host(HOST, policies, facts, now, fingerprinted=False)
        shown = render_plan(Plan(now=now, hosts=(plan,)), Style(False))
        assert plan.changes and "ccci.rules.orphans" in sys.modules, shown
        print(",".join(m for m in {NOT_FOR_THE_JANITOR!r} if m in sys.modules))
        """
    )
    assert python(script) == ""


def test_a_plan_of_every_kind_is_the_same_whether_its_rules_were_imported_first_or_late(
    tmp_path: Path,
) -> None:
    """Late: each rule imported by the first plan of its kind. First: every rule and the
    fingerprints imported before anything is loaded, as when ccci.plan.build imported
    them itself."""
    values = {"rules": str(RULES), "folder": str(tmp_path), "reap": str(REAP)}
    late = json.loads(python(PLAN_ALL.format(preamble="", **values)))
    eager = "import ccci.rules.daemon, ccci.rules.timers, ccci.rules.orphans\n"
    eager += "import ccci.rules.prune, ccci.rules.retention, ccci.plan.fingerprint"
    first = json.loads(python(PLAN_ALL.format(preamble=eager, **values)))

    assert late == first
    assert len(late) == len(list(RULES.glob("*/*.yaml"))) + 1
    every_kind = json.loads(late["every kind"])["hosts"][0]
    assert {c["policy"] for c in every_kind["changes"]} >= {"reap-killed-runs"}
    assert every_kind["fingerprints"]


def test_preloading_a_hosts_policies_imports_their_rules_and_no_other() -> None:
    script = textwrap.dedent(
        """
        import sys
        from ccci.plan.build import preload
        from ccci.policy.model import OrphanStackPolicy, PrunePolicy

        # Only a policy's kind counts, so two bare instances stand for a host's policies.
        preload([object.__new__(OrphanStackPolicy), object.__new__(PrunePolicy)])
        names = ("orphans", "prune", "retention", "timers", "daemon")
        print(",".join(n for n in names if f"ccci.rules.{n}" in sys.modules))
        print("ccci.plan.fingerprint" in sys.modules)
        """
    )
    assert python(script).split() == ["orphans,prune", "True"]
