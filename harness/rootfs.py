"""A cached Debian bookworm rootfs (debootstrap) for the systemd test host.

Nothing can be pulled, so the systemd image is imported from this directory. It
lives outside the repo (default /var/cache/ccci/rootfs-bookworm) so fresh CI
clones reuse it; a stamp file written only after a complete build makes the
build idempotent, and any directory without a matching stamp is rebuilt.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator

from harness import apt, locks, mounts
from harness.engine import EngineError

DEFAULT_DIR = "/var/cache/ccci/rootfs-bookworm"
SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates")
# Units that need hardware, a console, kernel modules or a writable /proc/sys;
# in a container they only fail and leave the system "degraded" or stuck.
MASKED_UNITS = (
    "getty@.service", "serial-getty@.service", "console-getty.service", "getty.target",
    "getty-static.service",
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service", "systemd-hwdb-update.service",
    "systemd-networkd-wait-online.service", "systemd-remount-fs.service",
    "systemd-modules-load.service", "kmod-static-nodes.service", "systemd-sysctl.service",
    "systemd-firstboot.service", "systemd-journald-audit.socket", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount", "dev-hugepages.mount", "dev-mqueue.mount",
    "systemd-pcrphase.service", "systemd-pcrphase-sysinit.service",
    "systemd-pcrphase-initrd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
)  # fmt: skip
# Bump when the post-debootstrap tweaks change, so cached rootfs dirs are rebuilt.
_TWEAKS_VERSION = "2"


def rootfs_dir() -> str:
    return os.path.abspath(os.environ.get("CCCI_ROOTFS_DIR") or DEFAULT_DIR)


def recipe_id() -> str:
    """Short hash of everything that shapes the rootfs; stamp and image label carry it."""
    recipe = "|".join((SUITE, *PACKAGES, *MASKED_UNITS, _TWEAKS_VERSION))
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _stamp(path: str) -> str:
    # Beside the dir, not inside it, so the stamp never ends up in the image.
    return path + ".stamp"


def is_ready(path: str | None = None) -> bool:
    """True if the rootfs at path was completely built from the current recipe."""
    path = path or rootfs_dir()
    try:
        with open(_stamp(path)) as fh:
            return fh.read().strip() == recipe_id() and os.path.isdir(path)
    except OSError:
        return False


# ---- finding the mirror --------------------------------------------------------


def _deb822_uris(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every `Types: deb` stanza in a .sources file."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "#")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split():
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def _one_line_uris(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, [suite]) of every `deb` line in a sources.list file."""
    for line in text.splitlines():
        words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], [words[2]]


def find_mirror() -> str:
    """The Debian mirror apt already uses (never hard-coded); env CCCI_DEBIAN_MIRROR wins."""
    if override := os.environ.get("CCCI_DEBIAN_MIRROR"):
        return override
    candidates: list[tuple[str, list[str]]] = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            candidates += _deb822_uris(text)
        elif path.endswith(".list"):
            candidates += _one_line_uris(text)
    for uri, suites in candidates:
        if SUITE in suites and "security" not in uri:
            return uri
    raise EngineError(f"no apt source for {SUITE} in /etc/apt; set CCCI_DEBIAN_MIRROR")


# ---- building --------------------------------------------------------------------


def _run(cmd: list[str], what: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise EngineError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                          f"{proc.stderr[-3000:]}")  # fmt: skip


def _ensure_debootstrap() -> str:
    """debootstrap path, installing Debian's package on a fresh machine."""
    apt.ensure({"debootstrap": "debootstrap"}, EngineError)
    path = apt.which("debootstrap")
    if not path:
        raise EngineError("debootstrap still missing after apt-get install")
    return path


def _remove(path: str) -> None:
    """Drop a half-made rootfs; a killed debootstrap can leave /proc or /sys mounted
    inside it, and rmtree must never descend into those."""
    mounts.unmount_under(path)
    if mounts.mounts_under(path):
        raise EngineError(f"refusing to delete {path}: mounts remain")
    shutil.rmtree(path, ignore_errors=False)


def _mask_units(path: str) -> None:
    """Disable and mask, as `systemctl disable` + `mask` would: drop the *.wants
    links (else list-timers still shows masked timers) and link the unit to /dev/null."""
    unit_dir = os.path.join(path, "etc/systemd/system")
    os.makedirs(unit_dir, exist_ok=True)
    for unit in MASKED_UNITS:
        for wanted in glob.glob(os.path.join(unit_dir, "*.wants", unit)):
            os.unlink(wanted)
        link = os.path.join(unit_dir, unit)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink("/dev/null", link)


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _tweak(path: str) -> None:
    """Container-friendly defaults on top of the bare debootstrap result."""
    _mask_units(path)
    # Empty machine-id: systemd makes a fresh one per container boot.
    _write(os.path.join(path, "etc/machine-id"), "")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(path, "var/lib/dbus/machine-id"))
    # No password for root (console/su in the test host); nothing listens for logins.
    shadow = os.path.join(path, "etc/shadow")
    with open(shadow) as fh:
        lines = fh.read().splitlines()
    lines = ["root::" + ln.split(":", 2)[2] if ln.startswith("root:") else ln for ln in lines]
    _write(shadow, "\n".join(lines) + "\n")
    # Keep image small: apt lists and the .deb cache are not needed at runtime.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in glob.glob(os.path.join(path, sub, "*")):
            if os.path.isfile(entry):
                os.unlink(entry)


def ensure_rootfs() -> str:
    """Return the path of a complete rootfs, building it (minutes) only if needed."""
    path = rootfs_dir()
    if is_ready(path):
        return path
    with locks.held(path + ".lock", dir_mode=0o755):  # one debootstrap at a time
        if is_ready(path):
            return path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_stamp(path))
        if os.path.lexists(path):
            _remove(path)
        debootstrap = _ensure_debootstrap()
        cmd = [
            debootstrap, "--variant=minbase", "--include=" + ",".join(PACKAGES),
            SUITE, path, find_mirror(),
        ]  # fmt: skip
        try:
            _run(cmd, "debootstrap")
        except EngineError as exc:
            log = os.path.join(path, "debootstrap/debootstrap.log")
            with contextlib.suppress(OSError), open(log, errors="replace") as fh:
                exc.args = (f"{exc}\n--- {log} (tail) ---\n{fh.read()[-3000:]}",)
            raise
        finally:
            mounts.unmount_under(path)
        _tweak(path)
        _write(_stamp(path), recipe_id() + "\n")
    return path
