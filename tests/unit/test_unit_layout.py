"""A present timer's two unit files, line for line, as ccci writes them.

The texts below are what the Jinja2 templates ccci used before rendered for the same
values (the Python renderer replaced them to keep Jinja2 out of every run's start-up):
a unit written by an older ccci is still recognised as the same, never rewritten.
"""

from __future__ import annotations

from typing import Any

from ccci.systemd.units import render_timer_units

FULL: dict[str, Any] = {
    "policy": "ci-timers",
    "name": "ccci-nightly",
    "description": "ccci nightly (50% rule)",
    "on_calendar": "*-*-* 03:00:00",
    "persistent": True,
    "randomized_delay": "15m",
    "exec": "/usr/local/bin/ccci reconcile --apply --yes",
    "success_exit_status": "2",
    "after": "docker.service",
    "hardening": True,
    "read_write_paths": ["/var/lib/ccci", "/var/tmp/x%y"],
    "working_directory": "/etc/ccci",
}
BARE: dict[str, Any] = {
    **FULL,
    "policy": "p",
    "name": "t",
    "description": "t (managed by ccci)",
    "on_calendar": "daily",
    "persistent": False,
    "randomized_delay": "",
    "exec": "/bin/true",
    "success_exit_status": "",
    "after": "",
    "hardening": False,
    "read_write_paths": [],
    "working_directory": "",
}


def test_a_timer_with_every_setting_renders_each_in_its_place() -> None:
    units = render_timer_units(FULL)
    assert units.timer == (
        "# Managed by ccci (policy ci-timers). Edit the policy, not this file.\n"
        "[Unit]\nDescription=ccci nightly (50%% rule)\n\n"
        "[Timer]\nOnCalendar=*-*-* 03:00:00\nPersistent=true\nRandomizedDelaySec=15m\n"
        "Unit=ccci-nightly.service\n\n[Install]\nWantedBy=timers.target\n"
    )
    assert units.service == (
        "# Managed by ccci (policy ci-timers). Edit the policy, not this file.\n"
        "[Unit]\nDescription=ccci nightly (50%% rule)\n"
        "After=docker.service\nWants=docker.service\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/local/bin/ccci reconcile --apply --yes\n"
        "WorkingDirectory=/etc/ccci\nSuccessExitStatus=2\n"
        "# Hardening that still reaches the Docker socket and the folders ccci writes in.\n"
        "PrivateTmp=true\nProtectSystem=full\nProtectHome=read-only\n"
        "ProtectKernelTunables=true\nProtectKernelModules=true\nProtectControlGroups=true\n"
        "NoNewPrivileges=true\nRestrictSUIDSGID=true\nLockPersonality=true\n"
        "ReadWritePaths=-/var/lib/ccci\nReadWritePaths=-/var/tmp/x%%y\n"
    )


def test_a_timer_without_options_leaves_their_lines_out() -> None:
    units = render_timer_units(BARE)
    assert units.timer == (
        "# Managed by ccci (policy p). Edit the policy, not this file.\n"
        "[Unit]\nDescription=t (managed by ccci)\n\n"
        "[Timer]\nOnCalendar=daily\nPersistent=false\nUnit=t.service\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    assert units.service == (
        "# Managed by ccci (policy p). Edit the policy, not this file.\n"
        "[Unit]\nDescription=t (managed by ccci)\n\n"
        "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
