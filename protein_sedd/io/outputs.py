"""Where commands may write: never over a user's files, an input or a checkpoint; one run per folder.

The rules every command follows, checked before any work starts:

- An output is never one of the command's inputs, and never lies inside a checkpoint (a folder holding
  `model.safetensors` and `config.yaml`): writing there would overwrite what the command reads.
- An output folder is claimed by one command. A claimed folder holds `.protein-sedd/owner.json` (which
  command wrote it and the names of the files it wrote) and `.protein-sedd/lock`. A command writes into
  a folder that is new, empty, or its own earlier output; a non-empty folder of anything else is refused
  unless `--overwrite` is given, and even then only the files the command itself writes are replaced or
  removed: the user's other files stay.
- While a command runs it holds an exclusive lock on its folder (`flock`, released by the OS when the
  process ends, even on kill -9), so a second run on the same folder is refused instead of corrupting it.
- An output file (designs FASTA, evaluate's JSON) is replaced only when it is the same command's earlier
  output (recognised by its content) or `--overwrite` is given.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from protein_sedd.errors import UserError
from protein_sedd.io.atomic import write_json_atomic
from protein_sedd.io.paths import check_output_path
from protein_sedd.model.folder import CONFIG, WEIGHTS


def _field(option: str) -> str | None:
    """The library parameter an output is named by (`{folder}`, `summary of {out}` -> folder, out), None
    for a label that names no parameter."""
    found = re.search(r"\{(\w+)\}", option)
    return found.group(1) if found else None


def _refusal(message: str, option: str) -> UserError:
    """A refused output. `option` is a command's flag (`--out`), or a library parameter written `{folder}`
    (then the message names it as the caller wrote it); `{overwrite}` in `message` is that parameter."""
    field = _field(option)
    return UserError(message, field=("overwrite", field) if field else "overwrite")


STATE_DIR = ".protein-sedd"
OWNER_FILE = "owner.json"
LOCK_FILE = "lock"


def is_checkpoint_dir(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def refuse_clobbering(
    path: Path, option: str, inputs: Iterable[Path | None] = (), *, itself: bool = True
) -> None:
    """Refuse an output that is an input, or lies inside a checkpoint (or is one, unless not `itself`)."""
    path = Path(path)
    resolved = path.resolve()
    for given in inputs:
        if given is None or str(given) == "-":
            continue
        source = Path(given)
        if source.exists() and (resolved == source.resolve() or _same_file(path, source)):
            raise _refusal(
                f"{option} {path}: is the input {source}; writing it would destroy it, choose another name",
                option,
            )
    for folder in (resolved, *resolved.parents) if itself else resolved.parents:
        if folder.is_dir() and is_checkpoint_dir(folder):
            raise _refusal(
                f"{option} {path}: lies inside the checkpoint {folder}; "
                "write outputs elsewhere so the checkpoint stays intact",
                option,
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(
    path: Path,
    option: str,
    *,
    inputs: Iterable[Path | None] = (),
    overwrite: bool = False,
    is_own: Callable[[Path], bool],
    command: str,
) -> None:
    """An output file: writable place, not an input or inside a checkpoint, not someone else's file."""
    path = Path(path)
    if path.is_dir():
        raise _refusal(f"{option} {path}: is a folder; give a file name inside it", option)
    check_output_path(path, option, _field(option))
    refuse_clobbering(path, option, inputs)
    if path.exists() and not overwrite and not is_own(path):
        raise _refusal(
            f"{option} {path}: exists and was not written by `protein-sedd {command}`; "
            "choose another name, or pass {overwrite} to replace it",
            option,
        )
    if path.exists() and not path.is_file():
        raise _refusal(f"{option} {path}: exists and is not a regular file", option)


class OutputFolder:
    """A folder one command writes into: claimed, locked, and told which files are its own."""

    def __init__(self, path: Path, command: str, option: str):
        self.path = Path(path)
        self.command = command
        self.option = option
        self._lock_handle = None
        self._created = False

    # -- what is there already --
    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    def owner(self) -> dict | None:
        """The owner record of the folder, or None when it has none (or an unreadable one)."""
        try:
            record = json.loads((self.state_dir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("files"), list):
            return None
        return record

    def is_own(self) -> bool:
        record = self.owner()
        return record is not None and record.get("command") == self.command

    def own_files(self) -> list[str]:
        """The names this command recorded as its own here; a record naming anything but a plain file name
        of the folder's top level (a path, `..`, a link's inside) was edited, and is refused whole."""
        record = self.owner()
        if record is None or record.get("command") != self.command:
            return []
        bad = next((name for name in record["files"] if not _plain_name(name)), None)
        if bad is not None:
            owner = self.state_dir / OWNER_FILE
            raise _refusal(
                f"{self.option} {self.path}: its ownership record {owner} lists {bad!r}, which is not a "
                f"file {self.command} writes at the folder's top level (the record was edited); nothing was "
                f"removed: delete {self.state_dir} to release the folder, or choose another",
                self.option,
            )
        return list(record["files"])

    def is_empty(self) -> bool:
        return not any(p.name != STATE_DIR for p in self.path.iterdir())

    # -- checks and claims --
    def check(self, *, inputs: Iterable[Path | None] = (), overwrite: bool = False) -> str:
        """Check the folder may be written; returns 'new', 'empty', 'own' or 'overwrite'."""
        check_output_path(self.path, self.option, _field(self.option))
        refuse_clobbering(self.path, self.option, inputs)
        if not self.path.exists():
            return "new"
        if not self.path.is_dir():
            raise _refusal(f"{self.option} {self.path}: exists and is not a folder", self.option)
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise _refusal(f"{self.option} {self.path}: folder is not writable", self.option)
        if self.is_own():
            return "own"
        if self.is_empty():
            return "empty"
        if overwrite:
            return "overwrite"
        raise _refusal(
            f"{self.option} {self.path}: folder is not empty and holds no {self.command} output; "
            f"choose a new or empty folder, or pass {{overwrite}} to write {self.command}'s files "
            "into it (only those are replaced; other files stay)",
            self.option,
        )

    def lock(self) -> OutputFolder:
        """Create the folder and take its lock; a second run on it is refused, not interleaved."""
        try:
            self._created = not self.path.exists()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.state_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held until release)
        except OSError as err:
            raise _refusal(
                f"{self.option} {self.path}: cannot create the folder ({err.strerror})", self.option
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise _refusal(
                f"{self.option} {self.path}: another protein-sedd run is writing this folder ({holder}); "
                "wait for it to finish or choose another folder",
                self.option,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle
        return self

    def release(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing drops the flock
            self._lock_handle = None

    def __enter__(self) -> OutputFolder:
        return self.lock() if self._lock_handle is None else self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None and self._created and self.is_empty():
            import shutil  # a folder this run created and never wrote to is not left behind

            shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def record(self, files: Iterable[str]) -> None:
        """Add `files` (names inside the folder) to the ones this command owns there."""
        known = set(self.own_files())
        known.update(files)
        write_json_atomic(self.state_dir / OWNER_FILE, {"command": self.command, "files": sorted(known)})

    def remove_own_files(self) -> None:
        """`--overwrite` on an earlier run: remove only the files this command recorded as its own."""
        import shutil

        for name in self.own_files():
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        self.record([])  # keeps the claim, forgets the removed files

    def move_to(self, target: Path) -> None:
        """Rename the (locked) folder onto `target`, absent or empty; the lock moves with it."""
        os.replace(self.path, target)
        self.path = Path(target)


def _plain_name(name) -> bool:
    """Whether a name recorded in owner.json is one file or folder at the folder's top level: never a path
    (`sub/x`, which a symlinked `sub` would take outside), `.`, `..` or the state folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..", STATE_DIR)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )
