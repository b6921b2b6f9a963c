"""A file's sha256 remembered by what `stat` says of it, so a large file is read once, not on every use.

A memo holds the file's stat key, (device, inode, size, mtime_ns, ctime_ns), and the sha256 the file had
with that key. A later lookup whose key is the same returns the sha256 without reading the file; any
difference (the file edited, replaced, touched, copied over, chmod-ed) hashes it again. ctime cannot be
set from user space: `touch -d`, `os.utime` and `rsync -t` restore mtime but move ctime to now, so a file
rewritten in place to the same size with its old mtime is still hashed again.

A key is recorded only when it was the same before and after the file was read (nothing wrote to it
meanwhile). The trade-off, against hashing on every use: content changed without the kernel updating
ctime (writes to the raw device, bit rot, a clock set back) is not noticed until a full check
(`protein-sedd prepare-data --verify`). On filesystems whose timestamps are coarse (a few ms) and kernels
without fine-grained timestamps after a stat (Linux < 6.13), a same-size rewrite within the same
millisecond-scale tick as the recorded stat would also keep the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from protein_sedd.data.datasets import cache_root, sha256_of
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import write_json_atomic


def stat_key(path: Path) -> list[int]:
    """What must stay the same for a file to be taken as unchanged."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def memo_path(path: Path) -> Path:
    """The memo of `path` (one small JSON file per file, keyed by its absolute path)."""
    name = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:32]
    return cache_root() / "hashes" / f"{name}.json"


def remembered_sha256(path: Path, trust_memo: bool = True) -> str:
    """sha256 of file `path`: from its memo while its stat key is unchanged, else read whole (and
    remembered). `trust_memo=False` always reads the file."""
    path = Path(path)
    key = stat_key(path)
    if trust_memo:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            memo = json.loads(memo_path(path).read_text())
            if memo.get("key") == key and isinstance(memo.get("sha256"), str):
                return memo["sha256"]
    sha256 = sha256_of(path)
    remember_sha256(path, sha256, key)
    return sha256


def remember_sha256(path: Path, sha256: str, key_before: list[int]) -> None:
    """Record `sha256`, read from `path` while its stat key was `key_before`, if the key is still that
    (else nothing: the file changed while it was read). A cache that cannot be written only costs time."""
    with contextlib.suppress(OSError, UserError):
        if stat_key(path) == key_before:
            target = memo_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                target, {"path": str(Path(path).resolve()), "key": key_before, "sha256": sha256}
            )
