"""What may reach a unit file, a ``systemctl`` argument or a Nix string, and how it is escaped.

A TimerPolicy comes from a pull request, and what it says ends up in files systemd runs as
root. A newline in a value would start a directive of its own (``ExecStartPre=…``); a value
ending in a backslash would swallow the next line (systemd joins such lines), which could be
a sandboxing line; a name starting with ``-`` would reach ``systemctl`` as an option. So every
value is checked when the policy loads, each against what its field can hold, and the few
characters that stay meaningful inside a field are escaped when rendering: ``%`` (systemd's
specifiers) and, for Nix, ``"``, ``\\`` and ``${``. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

# Units ccci must never write over nor mask: the engine it keeps healthy runs in them.
PROTECTED_UNITS = frozenset({"docker.service", "docker.socket", "containerd.service"})
# systemd's UNIT_NAME_MAX is 256 bytes with the terminating NUL.
UNIT_NAME_MAX = 255
UNIT_SUFFIXES = (
    "service", "socket", "target", "timer", "mount", "automount", "swap", "path", "slice",
    "scope", "device",
)  # fmt: skip
# systemd.service(5): prefixes that change how (and with which privileges) a command runs;
# ``+`` would run it outside the sandbox. ccci writes plain commands only.
_EXEC_PREFIXES = "@-:+!|"
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_BASE_NAME = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_:.-]*")
_UNIT_NAME = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_:.@\\-]*\.(" + "|".join(UNIT_SUFFIXES) + ")")
_CALENDAR = re.compile(r"[A-Za-z0-9*,./:~_ +-]+")
_EXIT_STATUS = re.compile(r"[0-9]{1,3}|SIG[A-Z0-9]+|[A-Z][A-Z_]+")
# A ``$`` too: systemd writes it back escaped, so the path it holds is not the one written.
_PATH_BAD = re.compile(r"[\s\"'\\$]")


def _describe(char: str) -> str:
    named = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}
    return named.get(char, f"the control character U+{ord(char):04X}")


def control_character(text: str) -> str | None:
    """The first character that could break a line or hide text, described; else None.

    Python's own ``splitlines`` breaks at U+0085, U+2028 and U+2029 too, and ccci reads
    units back with it; bidirectional overrides make a terminal show other text than is
    there."""
    for char in text:
        if char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return _describe(char)
    return None


def _plain(text: str, what: str) -> None:
    found = control_character(text)
    if found:
        raise ValueError(f"{what} holds {found}: a unit file value is one line")
    if text.rstrip().endswith("\\"):
        raise ValueError(f"{what} ends in a backslash, which would join the next unit line")


def check_text(text: str) -> str:
    """A free-text value (Description=): one line, not continued onto the next."""
    _plain(text, "the text")
    return text


def check_timer_name(name: str) -> str:
    """A present timer's base name: ccci writes ``<name>.service`` and ``<name>.timer``."""
    _plain(name, "the name")
    if name.startswith("-"):
        raise ValueError(f"{name!r} starts with '-', which systemctl would read as an option")
    if not _BASE_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a unit base name (letters, digits and :_.-, not starting with '.')"
        )
    suffix = name.rpartition(".")[2]
    if "." in name and suffix in UNIT_SUFFIXES:
        raise ValueError(f"{name!r} ends in .{suffix}: give the base name, ccci adds .service")
    if len(name) + len(".service") > UNIT_NAME_MAX:
        raise ValueError(f"the name is {len(name)} characters; systemd allows {UNIT_NAME_MAX}")
    for unit in (f"{name}.service", f"{name}.timer"):
        if unit in PROTECTED_UNITS:
            raise ValueError(f"{name!r} would replace {unit}, which runs the Docker engine")
    return name


def check_unit_name(name: str) -> str:
    """A full unit name with its suffix (``docker.service``), as systemctl takes it."""
    _plain(name, "the unit name")
    if name.startswith("-"):
        raise ValueError(f"{name!r} starts with '-', which systemctl would read as an option")
    if not _UNIT_NAME.fullmatch(name) or len(name) > UNIT_NAME_MAX:
        raise ValueError(f"{name!r} is not a systemd unit name like docker.service")
    return name


def check_absent_unit(name: str) -> str:
    """An absent entry, ``.timer`` added when there is no suffix: only timers are masked."""
    full = name if "." in name else f"{name}.timer"
    check_unit_name(full)
    if not full.endswith(".timer"):
        raise ValueError(
            f"{name!r} is not a timer: absent masks timers only (a masked "
            f"{full.rpartition('.')[2]} could take down what depends on it)"
        )
    return full


def check_units_list(text: str) -> str:
    """A space-separated list of unit names (After=, Wants=)."""
    _plain(text, "the list")
    if not text.split():
        raise ValueError("the list of units is empty")
    for name in text.split():
        check_unit_name(name)
    return text


def check_exec(text: str) -> str:
    """ExecStart=: one command line without a systemd prefix."""
    _plain(text, "the command line")
    stripped = text.lstrip()
    if not stripped:
        raise ValueError("the command line is empty")
    if stripped[0] in _EXEC_PREFIXES:
        raise ValueError(
            f"the command line starts with {stripped[0]!r}, a systemd prefix that changes "
            "how the command runs; write the command itself"
        )
    problem = _exec_words_problem(text)
    if problem:
        raise ValueError(f"the command line has {problem}; systemd would not read it as written")
    return text


def _exec_words_problem(text: str) -> str:
    """What would make systemd split ExecStart= other than as written, or refuse it: a
    backslash (C escapes), an unclosed quote, a quote inside a word (systemd opens quotes
    only at the start of one), or a lone ``;`` (which starts a second command)."""
    if "\\" in text:
        return "a backslash"
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] in "\"'":
            end = text.find(text[i], i + 1)
            if end < 0:
                return "an unclosed quote"
            if end + 1 < n and text[end + 1] not in " \t":
                return "a quote that does not end its word"
            i = end + 1
            continue
        start = i
        while i < n and text[i] not in " \t":
            if text[i] in "\"'":
                return "a quote inside a word"
            i += 1
        if text[start:i] == ";":
            return "a lone ';' (a second command)"
    return ""


def check_calendar(text: str) -> str:
    """OnCalendar=: the characters calendar specs are made of (systemd.time(7))."""
    _plain(text, "the calendar spec")
    if not _CALENDAR.fullmatch(text) or not text.strip():
        raise ValueError(f"{text!r} is not a systemd calendar spec like daily or *-*-* 03:00:00")
    return text


def check_exit_statuses(text: str) -> str:
    """SuccessExitStatus=: exit codes (0–255) and signal names, separated by spaces."""
    _plain(text, "the exit status list")
    tokens = text.split()
    if not tokens:
        raise ValueError("the exit status list is empty")
    for token in tokens:
        if not _EXIT_STATUS.fullmatch(token) or (token.isdigit() and int(token) > 255):
            raise ValueError(f"{token!r} is not an exit code (0-255) or a signal name like SIGTERM")
    return text


def check_path(text: str) -> str:
    """An absolute, normal path without whitespace, quotes, backslashes or ``$``: systemd
    splits ReadWritePaths= at spaces and unquotes, and such a path would become two, or
    another."""
    _plain(text, "the path")
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not an absolute path")
    if _PATH_BAD.search(text):
        raise ValueError(f"{text!r} holds whitespace, a quote, a backslash or a '$'")
    if any(part in (".", "..") for part in text.split("/")):
        raise ValueError(f"{text!r} has a . or .. component")
    return text


def exit_statuses(text: str) -> list[int | str]:
    """``"75 SIGTERM"`` → ``[75, "SIGTERM"]``, as NixOS takes SuccessExitStatus."""
    return [int(t) if t.isdigit() else t for t in text.split()]


# ---- escaping -----------------------------------------------------------------------------


def unit_value(text: str) -> str:
    """A value with ``%`` doubled: systemd expands ``%h``, ``%n``… in most settings, and
    ccci's values are meant literally."""
    return text.replace("%", "%%")


def nix_string(text: str) -> str:
    """A Nix double-quoted string holding exactly ``text``: ``\\``, ``"`` and ``${`` (an
    interpolation) escaped, and any line break spelled out."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


# ---- a TimerPolicy present entry ----------------------------------------------------------

Field = tuple[str | int, ...]
_CHECKS = {
    "name": check_timer_name,
    "description": check_text,
    "on_calendar": check_calendar,
    "exec": check_exec,
    "success_exit_status": check_exit_statuses,
    "after": check_units_list,
    "working_directory": check_path,
}


class FieldError(ValueError):
    """A bad value and the field (path below the entry) it is in."""

    def __init__(self, field: Field, message: str) -> None:
        super().__init__(message)
        self.field = field


def _strings(value: object, field: Field) -> list[tuple[Field, str]]:
    if isinstance(value, str):
        return [(field, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, (*field, str(k)))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, (*field, i))]
    return []


def check_timer(item: dict[str, object]) -> None:
    """Every value of one present timer, each against what its field can hold; the first
    bad one raises FieldError naming its field. Any string at all is one line."""
    for field, text in _strings(item, ()):
        found = control_character(text)
        if found:
            raise FieldError(field, f"holds {found}: a unit file value is one line")
    for key, check in _CHECKS.items():
        value = item.get(key)
        if isinstance(value, str):
            try:
                check(value)
            except ValueError as exc:
                raise FieldError((key,), str(exc)) from None
    paths = item.get("read_write_paths")
    for i, path in enumerate(paths if isinstance(paths, list) else []):
        try:
            check_path(str(path))
        except ValueError as exc:
            raise FieldError(("read_write_paths", i), str(exc)) from None
