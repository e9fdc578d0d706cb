"""The installed ``ccci`` ends its process without the interpreter's teardown, and nothing
anyone can see differs: the same output, exit status and exit handlers as ``main()`` under
the interpreter's own exit. Each case runs a real interpreter (the quick end would end
pytest's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def _ccci(entry: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ccci args`` through ``entry``: the console script, or ``main()`` left to Python."""
    call = "console()" if entry == "console" else "main()"
    where = "ccci.cli.console import console" if entry == "console" else "ccci.cli.main import main"
    return _python(f"import sys\nsys.argv = ['ccci', *sys.argv[1:]]\nfrom {where}\n{call}", *args)


@pytest.mark.parametrize(
    "args",
    [("--version",), ("schema", "PrunePolicy"), ("schema",), ("nosuch",), ("janitor", "--bad")],
)
def test_the_console_script_shows_and_exits_as_main_does_under_pythons_exit(
    args: tuple[str, ...],
) -> None:
    quick, plain = _ccci("console", *args), _ccci("main", *args)
    assert (quick.returncode, quick.stdout, quick.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
    assert quick.stdout or quick.stderr  # each case says something


def test_exit_handlers_run_after_the_command_and_its_output_is_all_there() -> None:
    done = _python(
        "import atexit, sys\n"
        "from ccci.cli.console import console\n"
        "atexit.register(print, 'handler ran')\n"
        "sys.argv = ['ccci', '--version']\n"
        "console()\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "handler ran"
    assert done.stdout.splitlines()[0].startswith("ccci, version ")


def test_a_thread_still_running_is_waited_for_as_pythons_exit_waits() -> None:
    done = _python(
        "import sys, threading, time\n"
        "from ccci.cli.console import console\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('thread done', flush=True)\n"
        "threading.Thread(target=late).start()\n"
        "sys.argv = ['ccci', 'nosuch']\n"
        "console()\n"
    )
    assert done.returncode == 2
    assert done.stdout == "thread done\n"
    assert "No such command 'nosuch'" in done.stderr


@pytest.mark.parametrize(
    ("code", "status", "stderr"), [("None", 0, ""), ("3", 3, ""), ("'bye'", 1, "bye\n")]
)
def test_an_exit_status_is_what_sys_exit_would_make_of_it(
    code: str, status: int, stderr: str
) -> None:
    done = _python(
        "import sys\n"
        "import ccci.cli.console as entry\n"
        f"entry.main = lambda: sys.exit({code})\n"
        "entry.console()\n"
    )
    assert (done.returncode, done.stderr) == (status, stderr)


def test_an_error_ccci_did_not_expect_leaves_its_traceback_as_python_does() -> None:
    done = _python(
        "import ccci.cli.console as entry\n"
        "def broken():\n"
        "    raise RuntimeError('a bug')\n"
        "entry.main = broken\n"
        "entry.console()\n"
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.rstrip().endswith("RuntimeError: a bug")
