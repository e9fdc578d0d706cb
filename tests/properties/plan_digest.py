"""Plan the derandomized safety scenarios and print one digest of their facts and one of
their plans: ``python plan_digest.py COUNT``.

Run by ``test_plans_do_not_depend_on_the_hash_seed`` under different ``PYTHONHASHSEED``
values: a set or a dict keyed by strings iterated into a plan would order it differently
in each process, which planning twice in one process cannot show.
"""

from __future__ import annotations

import hashlib
import sys

from hypothesis import HealthCheck, given, settings
from snapshots import NOW
from test_safety_properties import HOST, SCENARIOS

from ccci.facts.model import Facts
from ccci.plan.build import plan_host
from ccci.plan.model import Plan
from ccci.policy.model import Policy


def digests(count: int) -> tuple[str, str]:
    facts_digest, plans_digest = hashlib.sha256(), hashlib.sha256()

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(SCENARIOS)
    def plan_each(scenario: tuple[tuple[Policy, ...], Facts]) -> None:
        policies, facts = scenario
        plan = Plan(now=NOW, hosts=(plan_host(HOST, policies, facts, NOW),))
        facts_digest.update(facts.to_json().encode())
        plans_digest.update(plan.to_json().encode())

    plan_each()
    return facts_digest.hexdigest(), plans_digest.hexdigest()


if __name__ == "__main__":
    print(*digests(int(sys.argv[1])))
