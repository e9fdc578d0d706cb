"""ANSI colour, only when asked for (a terminal without NO_COLOR)."""

from __future__ import annotations

import os
from typing import TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never under ``NO_COLOR`` or ``TERM=dumb``: logs and pipes get
    plain text."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class Style:
    """Colours text or leaves it plain, decided once, so renderers never ask the terminal
    themselves."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, colour: str) -> str:
        """``text`` in ``colour`` (red, green, yellow, bold or dim) when enabled, else unchanged."""
        if not self.enabled:
            return text
        return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"
