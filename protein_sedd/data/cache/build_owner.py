"""Who is building a folder, and whether that builder has surely ended: so that the folders of builds
killed outright (kill -9, a lost node) can be removed without ever touching a live build's.

A building folder's first file, `owner.json`, names its builder: host, pid namespace (the same pid in
another container is another process), pid and start time. A folder is a dead build's when its builder ran
on this host and pid namespace and no such process exists, or when it started more than a day ago
(wherever it ran: a builder on another machine cannot be asked). A folder without a readable owner (killed
between creating it and writing the file, or still writing it) is judged by its age alone. A reused pid
only keeps a dead folder longer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

OWNER = "owner.json"
STALE_AFTER_S = 24 * 3600  # a building folder older than this is a dead build's, wherever it ran


def build_owner() -> dict:
    """Who is building: what `_dead_build` needs to tell whether the builder still runs."""
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = os.readlink("/proc/self/ns/pid")  # same pid on one host, another container: not ours
    return {
        "host": socket.gethostname(),
        "pid_namespace": namespace,
        "pid": os.getpid(),
        "started": time.time(),
    }


def _dead_build(folder: Path) -> bool:
    """Whether the build (or removal) that left `folder` has surely ended."""
    try:
        owner = json.loads((folder / OWNER).read_text())
        started, pid = float(owner["started"]), int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        owner = None
        try:
            started = folder.stat().st_mtime
        except OSError:
            return False  # gone already
    if time.time() - started > STALE_AFTER_S:
        return True
    here = build_owner()
    ours = owner is not None and all(owner.get(key) == here[key] for key in ("host", "pid_namespace"))
    if not ours:
        return False  # too young to judge, or another machine's: left for a day
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's live process
        return False
    return False


def remove_dead_builds(root: Path) -> list[Path]:
    """Remove the building (and moved-aside) folders under `root` whose builder has ended; returns them."""
    removed = []
    for folder in sorted(root.glob(".building-*")) + sorted(root.glob(".stale-*")):
        if folder.is_dir() and _dead_build(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
