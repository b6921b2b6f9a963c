"""Atomic file writes: a file appears complete or not at all, never half-written.

Every file the package writes goes through `atomic_path`: the content is written to a hidden temporary
sibling (same folder, so the final rename never crosses a filesystem), flushed to disk, and renamed onto
the target. If writing fails the temporary file is removed and the target is untouched; a full disk or
quota becomes a `UserError` naming the folder, so a command ends with one clear line and keeps whatever
it had written before (a last good checkpoint, earlier results).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from protein_sedd.errors import UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# how libraries that do not raise OSError report a full disk: safetensors (Rust I/O errors) and others
NO_SPACE_WORDS = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")
# torch.save's zip writer reports any short write as "unexpected pos N vs M": on a full disk when the
# folder has less room than this left
LOW_SPACE_BYTES = 64 * 1024**2


def new_file_mode() -> int:
    """The permissions a newly created file gets here: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def no_space_error(path: Path) -> UserError:
    return UserError(
        f"no space left on {Path(path).absolute().parent} (while writing {Path(path).name}); "
        "free some space and run the command again"
    )


@contextlib.contextmanager
def raise_no_space(path: Path) -> Iterator[None]:
    """Turn a full disk or quota met while writing `path` into a `UserError` naming its folder, however
    the writer reports it (an OSError, safetensors' error text, torch.save's short-write error)."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        if is_full_disk(err, path):
            raise no_space_error(path) from None
        raise


def is_full_disk(err: BaseException, path: Path) -> bool:
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        return True
    text = str(err)
    if any(words in text for words in NO_SPACE_WORDS):
        return True
    return "unexpected pos" in text and free_bytes(path) < LOW_SPACE_BYTES


def free_bytes(path: Path) -> int:
    """Room left on the filesystem holding `path` (its nearest existing folder)."""
    import shutil

    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A unique hidden name next to `path` (pid and a random part: two writers never share it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path`, on failure it is removed.

    `suffix` keeps an extension for libraries that pick a format from it (matplotlib's `savefig`).
    The file gets the usual permissions of a new file (0666 less the umask), whatever the writer used.
    """
    path = Path(path)
    tmp = temporary_sibling(path, suffix)
    try:
        with raise_no_space(path):
            yield tmp
            if not tmp.exists():
                raise RuntimeError(f"nothing was written to the temporary file for {path}")
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after the rename; removed after a failure


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_safe(value):
    """NaN/inf are not JSON: write them as null; numpy scalars become Python numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy or torch scalar
        return json_safe(value.item())
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | Path, data) -> None:
    """Indented JSON with a final newline."""
    write_text_atomic(path, json.dumps(json_safe(data), indent=2) + "\n")
