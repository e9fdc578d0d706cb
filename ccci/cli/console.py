"""The ``ccci`` command as installed: :func:`ccci.cli.main.main`, then a quick end.

Once a command is done, its exit handlers run and its output flushed, what is left of the
process is the interpreter's teardown: every module and object freed one by one and a last
collection over all of them, ~10 ms of a janitor run a CI job makes before every deploy,
more after a big plan. The kernel frees it all at once, so the console script ends the
process itself, after doing what the interpreter's exit would have done that anyone can
see: other threads ended, exit handlers run (the SSH connector's finalizers end masters
that are not kept), standard output and error flushed. While it runs, the cyclic collector
runs less often (``COLLECT_EVERY``).

Only a process whose other threads have all ended leaves this way; one with a thread still
running (nothing ccci starts outlives its command, but a library's might) and an error ccci
did not expect (its traceback) leave as Python leaves. ``main()`` itself never ends the
process, so it stays callable in-process.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import NoReturn

from ccci.cli.main import main

# What Python exits with when flushing standard output fails at exit (a closed pipe).
FLUSH_FAILED = 120


# A run's objects (its facts, its plan) live until it ends, so the collector's passes over
# them while it runs free nothing: ~5 ms of a janitor run with 50 stacks, ~11 ms of a plan's
# CPU at 1,500 images and containers. It still runs every this many allocations, so a long
# apply's cycles are freed.
COLLECT_EVERY = 100_000


def console() -> NoReturn:
    """The console script's entry point."""
    gc.set_threshold(COLLECT_EVERY, *gc.get_threshold()[1:])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = exit_status(stop.code)
    end(code)


def exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` ends a process with: None is 0, an int is itself,
    anything else is printed to standard error and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def end(code: int) -> NoReturn:
    """End the process with ``code`` as the interpreter's exit would, without its teardown;
    with another thread still running, by the interpreter's exit itself."""
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    # The interpreter's own exit runs these too (atexit's public run function is private).
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            code = code or FLUSH_FAILED
    os._exit(code)
