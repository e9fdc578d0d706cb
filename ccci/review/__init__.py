"""Policy review: lint policies before they merge, and say what a change does to the hosts.

``check`` reports every problem it can find (where reconcile stops at the first);
``semantic_diff`` explains a change by its meaning; ``impact`` plans a recorded snapshot
under both versions. Nothing here changes a host.
"""
