"""How text that ccci did not write is shown: the one escaping helper every renderer uses.

Stack, service, volume and config names, labels and policy values come from recipe and
policy pull requests. Printed raw, a newline in a stack name could fake a whole line of
ccci's own output ("No changes. Host matches policy."), a terminal escape could rewrite the
screen, and in a PR comment a ``|`` could end a table cell or ``<img>`` become markup. So
each renderer passes every such value through :func:`terminal` (text) or
:func:`markdown_cell` / :func:`html_text` (markdown), and never escapes by hand.
"""

from __future__ import annotations

import re

# C0 controls and DEL, C1 controls, and the Unicode characters that reorder or break
# lines (bidi overrides and isolates, line and paragraph separators): each can make a
# value look like something else on a terminal or a web page.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

# What Markdown (GitHub's flavour) would read as markup in a table cell or a line of
# text: backslash-escaped, so the cell shows the characters themselves.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~#!&])")


def _escape_one(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character :func:`terminal` would escape."""
    return _UNSAFE.search(text) is not None


def terminal(text: object) -> str:
    """``text`` on one line with every control character visible (``\\n``, ``\\e``,
    ``\\x07``, ``\\u202e``): what it says can no longer pass for ccci's own output."""
    return _UNSAFE.sub(_escape_one, str(text))


def markdown_cell(text: object) -> str:
    """``text`` as literal characters in a Markdown table cell or paragraph: controls
    made visible, markup characters backslash-escaped, and ``@`` kept from mentioning."""
    shown = _MARKDOWN.sub(r"\\\1", terminal(text))
    # A word joiner after '@' keeps a name like "@org/team" from notifying anyone.
    return shown.replace("@", "@\u2060")


def html_text(text: object) -> str:
    """``text`` inside an HTML element of the comment (``<summary>``): entities escaped."""
    # Imported here: html loads its table of named entities, which only markdown needs.
    import html

    return html.escape(terminal(text), quote=True).replace("@", "@\u2060")


def code_line(text: object) -> str:
    """A line safe inside a fenced code block: on one line, and unable to close the fence."""
    return terminal(text).replace("```", "`\u200b``")


def inline_code(text: object) -> str:
    """``text`` as a Markdown code span, however many backticks it holds."""
    shown = terminal(text)
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"
