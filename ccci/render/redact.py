"""What ccci never prints: the one decision of which values are secret (by their names:
:mod:`ccci.render.secretname`), and how they are masked.

``policy diff`` and ``policy check`` run on pull requests and their output is posted as a
PR comment, readable by anyone who can read the PR; a plan is pasted into tickets. So an
inventory variable whose name looks secret (``db_password``, ``registry_token``,
``api_key``…) never shows its value, ``Environment=`` lines of unit files (existing or
planned) never show theirs, and the value of a secret variable is scrubbed wherever it
surfaces later (rendered into a policy value, a unit file, an error message). Every
renderer asks this module; none decides for itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ccci.render.secretname import is_secret_name as is_secret_name

MASK = "(masked)"
CHANGED_MASK = "(masked, changed)"

# A secret shorter than this would mask ordinary text ("1", "on") wherever it appears.
MIN_SCRUB = 4


def masked_value(name: object, value: Any) -> Any:
    """``value`` with every secret in it masked: all of it when ``name`` looks secret,
    else the values of its secret-looking keys (a dict var ``db: {password: …}``)."""
    if is_secret_name(name):
        return MASK
    if isinstance(value, Mapping):
        return {k: masked_value(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked_value("", v) for v in value]
    return value


def shown_var(name: str, value: Any) -> str:
    """How a variable's value reads in review output: its repr, or the mask."""
    shown = masked_value(name, value)
    return MASK if shown == MASK else repr(shown)


def secret_values(variables: Mapping[str, Any]) -> set[str]:
    """Every value (as text) held by a secret-looking variable or key, however nested."""
    found: set[str] = set()

    def walk(name: object, value: Any, secret: bool) -> None:
        secret = secret or is_secret_name(name)
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(k, v, secret)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk("", v, secret)
        elif secret and value is not None and not isinstance(value, bool):
            text = str(value)
            if len(text) >= MIN_SCRUB:
                found.add(text)

    for name, value in variables.items():
        walk(name, value, False)
    return found


# ``Environment=`` lines hold credentials more often than not; a ``NAME=value`` word whose
# name looks secret (``--token=…``, ``PASSWORD=…``) anywhere in a unit does too.
_ENVIRONMENT = re.compile(r"^(\s*Environment\s*=)(.*)$")
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>\"[^\"]*\"|'[^']*'|\S+)")


def _mask_assignments(line: str) -> str:
    def one(match: re.Match[str]) -> str:
        if is_secret_name(match.group("name").lstrip("-")):
            return f"{match.group('name')}={MASK}"
        return match.group(0)

    return _ASSIGNMENT.sub(one, line)


def mask_unit_line(line: str, mask: str = MASK) -> str:
    """One line of a unit file as it may be shown."""
    env = _ENVIRONMENT.match(line)
    if env:
        return f"{env.group(1)}{mask}"
    key, sep, value = line.partition("=")
    if sep and key.strip() and not key.strip().startswith(("#", ";")):
        if is_secret_name(key.strip()):  # SetCredential=name:value holds the secret itself
            return f"{key}{sep}{mask}"
        return f"{key}{sep}{_mask_assignments(value)}"
    return line


def mask_unit(content: str) -> str:
    """A unit file as it may be shown: secret values masked, everything else as written."""
    return "\n".join(mask_unit_line(line) for line in content.split("\n"))


def mask_unit_pair(before: str, after: str) -> tuple[str, str]:
    """Both sides of a unit diff, masked so that a reviewer still sees *that* a masked
    line changed: a line of ``after`` absent from ``before`` is marked changed."""
    old = set(before.split("\n"))
    shown_after = [
        mask_unit_line(line, MASK if line in old else CHANGED_MASK) for line in after.split("\n")
    ]
    return mask_unit(before), "\n".join(shown_after)


def mask_change_dict(data: Any) -> Any:
    """A change's JSON (``before``/``after`` of a unit hold ``content``) with unit
    contents masked; anything else unchanged."""
    if not isinstance(data, dict):
        return data
    shown = dict(data)
    for side in ("before", "after"):
        body = shown.get(side)
        if isinstance(body, dict) and isinstance(body.get("content"), str):
            shown[side] = {**body, "content": mask_unit(body["content"])}
    return shown


@dataclass(frozen=True)
class Scrubber:
    """Replaces known secret values in finished output, in each form a renderer may have
    written them (as is, JSON-escaped, Markdown-escaped, terminal-escaped)."""

    secrets: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *variable_sets: Mapping[str, Any]) -> Scrubber:
        """A scrubber for every secret-looking value in these variable sets (an inventory's host
        vars)."""
        found: set[str] = set()
        for variables in variable_sets:
            found |= secret_values(variables)
        return cls(frozenset(found))

    def _forms(self) -> list[str]:
        from ccci.render import escape

        forms: set[str] = set()
        for secret in self.secrets:
            forms |= {
                secret,
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                repr(secret)[1:-1],
                escape.terminal(secret),
                escape.markdown_cell(secret),
                escape.html_text(secret),
            }
        # Longest first, so a secret that contains another is masked whole.
        return sorted((f for f in forms if len(f) >= MIN_SCRUB), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every form of every known secret masked, longest first, so a secret that
        holds another is masked whole."""
        for form in self._forms():
            text = text.replace(form, MASK)
        return text


def scrubber_for(hosts: Iterable[Any]) -> Scrubber:
    """The scrubber of every host's merged variables (inventory ``Host`` objects)."""
    return Scrubber.of(*(h.vars for h in hosts))
