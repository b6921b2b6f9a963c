"""Named datasets: manifests in data/, file resolution, download with checksum.

Resolution order for a named dataset's file: an explicit path (`--fasta`) > `$PROTEIN_SEDD_DATA/<name>/<file>`
> the user cache directory (`$XDG_CACHE_HOME/protein-sedd` or `~/.cache/protein-sedd`) > a download into that
cache, verified against the manifest's sha256. Set `PROTEIN_SEDD_OFFLINE=1` to never download.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from protein_sedd.config.compose import resource_dir
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import atomic_path


@dataclass(frozen=True)
class Manifest:
    name: str
    filename: str
    url: str
    sha256: str
    description: str = ""
    n_sequences: int | None = None
    min_length: int | None = None
    max_length: int | None = None


def manifests_dir() -> Path:
    return resource_dir("manifests", "data")


def available_datasets() -> list[str]:
    return sorted(p.stem for p in manifests_dir().glob("*.yaml"))


def load_manifest(name: str) -> Manifest:
    path = manifests_dir() / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_datasets())
        raise UserError(f"unknown dataset {name!r}; known datasets: {known} (or pass --fasta PATH)")
    return Manifest(**OmegaConf.to_container(OmegaConf.load(path)))


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "protein-sedd"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, manifest: Manifest) -> Path:
    actual = sha256_of(path)
    if actual != manifest.sha256:
        raise UserError(
            f"{path}: sha256 {actual[:12]}... does not match the {manifest.name} manifest "
            f"({manifest.sha256[:12]}...); "
            f"replace it with a fresh copy of {manifest.url}"
        )
    return path


def _download(manifest: Manifest, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:  # the file appears only once downloaded whole and checked
        with atomic_path(target) as partial:
            with urllib.request.urlopen(manifest.url, timeout=30) as response, open(partial, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
            _verify(partial, manifest)
    except OSError as err:
        raise ConnectionError(str(err)) from None
    return target


def resolve_dataset_path(
    name: str, fasta: str | Path | None = None, *, option: str | None = "--fasta PATH"
) -> Path:
    """The local FASTA file of a named dataset, downloading it into the cache if needed.

    `option` is how the calling command takes the file instead (seq-eval: `--reference PATH`; None: it
    cannot), named in the not-found message.
    """
    manifest = load_manifest(name)
    if fasta is not None:
        return _verify(Path(fasta), manifest)
    candidates = []
    if os.environ.get("PROTEIN_SEDD_DATA"):
        candidates.append(Path(os.environ["PROTEIN_SEDD_DATA"]) / manifest.name / manifest.filename)
    cached = cache_root() / manifest.name / manifest.filename
    candidates.append(cached)
    for candidate in candidates:
        if candidate.is_file():
            return _verify(candidate, manifest)
    where = " or ".join(str(c) for c in candidates)
    hint = (
        f"download {manifest.url} and put it at {where} (or set PROTEIN_SEDD_DATA to a folder holding "
        f"{manifest.name}/{manifest.filename})" + (f", or pass {option}" if option else "")
    )
    if os.environ.get("PROTEIN_SEDD_OFFLINE"):
        raise UserError(f"dataset {name!r} not found and PROTEIN_SEDD_OFFLINE is set; {hint}")
    try:
        return _download(manifest, cached)
    except ConnectionError as err:
        raise UserError(
            f"dataset {name!r} not found locally and the download failed ({err}); {hint}"
        ) from None


def resolve_reference(spec: str) -> Path:
    """A FASTA path as given, or a named dataset (`acyp`) through the dataset resolver."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec in available_datasets():
        return resolve_dataset_path(spec, option="--reference PATH")
    if path.exists():
        return path  # a folder or something odd: read_fasta names the problem
    if "/" in spec or "." in spec:
        raise UserError(f"--reference {spec}: no such file")
    known = ", ".join(available_datasets())
    raise UserError(f"--reference {spec!r}: neither a file nor a known dataset (known: {known})")
