"""What a change, noop or manual action is about: a kind from a closed set and an identity.

The text form (``image:sha256:…``, ``stack:ci-42``) is what plans, saved plans, the journal
and fixtures have always held; :class:`Address` parses it once and formats it back, so no
other module splits an address string to learn what it names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AddressKind(enum.StrEnum):
    """Every kind of subject the rules produce. A ``str`` enum, so a kind still compares
    equal to its text (``change.kind == "stack"``)."""

    IMAGE = "image"
    CONTAINER = "container"
    BUILD_CACHE = "build_cache"
    STACK = "stack"
    SECRET = "secret"
    ENV_FILE = "env_file"
    UNIT = "unit"
    TIMER = "timer"
    DAEMON = "daemon"
    # A policy as a whole: a noop or doubt that holds for everything it would have done.
    POLICY = "policy"


@dataclass(frozen=True)
class Address:
    """One subject: ``ident`` is the engine's id, a name, a path or a reference, as the
    kind has it (an image pull's ident is a reference and may itself hold colons)."""

    kind: AddressKind
    ident: str

    @classmethod
    def parse(cls, text: str) -> Address:
        """Read the text form; a kind outside the closed set is a ValueError (a saved plan
        naming one is not a plan this ccci wrote)."""
        kind, sep, ident = text.partition(":")
        if not sep:
            raise ValueError(f"address {text!r} has no kind")
        return cls(AddressKind(kind), ident)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.ident}"


def addr(kind: AddressKind, ident: str) -> str:
    """The text form of an address, as plans store it."""
    return str(Address(kind, ident))
