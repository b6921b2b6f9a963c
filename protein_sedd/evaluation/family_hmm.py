"""Family membership score: a profile HMM built from a sample of the reference family, then bit scores.

Build: a deterministic sample (`HMM_SAMPLE_SIZE` distinct sequences, seed 0) is aligned with FAMSA (pyfamsa)
and turned into a profile HMM with HMMER's builder (pyhmmer). Building takes seconds; the HMM is cached as
`<reference stem>.family-n<size>-<sha256[:12]>.hmm` next to the reference file, or under
`$XDG_CACHE_HOME/protein-sedd/hmm/` (default `~/.cache/protein-sedd/hmm/`) when that folder is read-only.
The key holds the reference's sha256 and the sample size, so an edited reference or another size never reuses
a stale HMM.

Score: HMMER's full-sequence bit score of the best hit. HMMER's acceleration filters drop sequences with no
detectable similarity and hits under 0 bits are not reported: such a design has NO hit and gets 0.0 bits (a
number, so means and histograms stay simple; `no_hit` fractions are reported separately). Natural family
members score ~100 bits; `PASS_BITS` = 25 is the membership threshold.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from protein_sedd.data.datasets import cache_root
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import atomic_path

HMM_SAMPLE_SIZE = 1000
SAMPLE_SEED = 0
PASS_BITS = 25.0


def sample_sequences(
    sequences: Sequence[str], size: int = HMM_SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> list[str]:
    """`size` distinct sequences drawn with a fixed seed, in the order they first appear in `sequences`."""
    distinct = list(dict.fromkeys(sequences))
    if len(distinct) <= size:
        return distinct
    chosen = sorted(random.Random(seed).sample(range(len(distinct)), size))
    return [distinct[i] for i in chosen]


def build_family_hmm(sequences: Sequence[str], name: str = "family"):
    """Align with FAMSA and build a profile HMM (pyhmmer.plan7.HMM)."""
    import pyfamsa
    from pyhmmer.easel import Alphabet, TextMSA, TextSequence
    from pyhmmer.plan7 import Background, Builder

    if len(sequences) < 2:
        raise ValueError("a family HMM needs at least two sequences")
    aligner = pyfamsa.Aligner(threads=1)
    msa = aligner.align(pyfamsa.Sequence(f"s{i}".encode(), s.encode()) for i, s in enumerate(sequences))
    alphabet = Alphabet.amino()
    rows = [TextSequence(name=row.id, sequence=row.sequence.decode()) for row in msa]
    digital = TextMSA(name=name.encode(), sequences=rows).digitize(alphabet)
    hmm, _, _ = Builder(alphabet).build_msa(digital, Background(alphabet))
    return hmm


def user_cache_dir() -> Path:
    return cache_root() / "hmm"  # beside the dataset cache: one place to point elsewhere (XDG_CACHE_HOME)


def cache_candidates(reference: Path, sha256: str, size: int) -> list[Path]:
    name = f"{reference.stem}.family-n{size}-{sha256[:12]}.hmm"
    return [reference.parent / name, user_cache_dir() / name]


def _read_hmm(path: Path):
    from pyhmmer.plan7 import HMMFile

    try:
        with HMMFile(path) as handle:
            return handle.read()
    except (OSError, ValueError, EOFError):
        return None  # unreadable or truncated cache: rebuild


def _writable_dir(folder: Path) -> bool:
    """Writable for us and not marked read-only (root may write anywhere; an r-x folder still says no)."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _write_hmm(hmm, path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _writable_dir(path.parent):
            return False
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            hmm.write(handle)
        return True
    except (OSError, UserError):  # a cache that cannot be written (full, read-only) is only slower
        return False


def cached_family_hmm(reference: Path, sha256: str, size: int = HMM_SAMPLE_SIZE):
    """(hmm, path) of the cached HMM for (reference sha256, size), or None when none is cached."""
    for path in cache_candidates(reference, sha256, size):
        if path.is_file() and (hmm := _read_hmm(path)) is not None:
            return hmm, path
    return None


def load_or_build_family_hmm(
    reference: Path, sha256: str, sequences: Sequence[str], size: int = HMM_SAMPLE_SIZE
):
    """The cached HMM for (reference sha256, size), building and caching it on first use.

    Returns (hmm, path of the cache file or None when no location was writable).
    """
    found = cached_family_hmm(reference, sha256, size)
    if found is not None:
        return found
    candidates = cache_candidates(reference, sha256, size)
    hmm = build_family_hmm(sample_sequences(sequences, size), name=reference.stem)
    for path in candidates:
        if _write_hmm(hmm, path):
            return hmm, path
    return hmm, None


def family_bits(hmm, sequences: Sequence[str]) -> np.ndarray:
    """Full-sequence bit score of every sequence against the HMM; 0.0 where HMMER reports no hit."""
    from pyhmmer.easel import DigitalSequenceBlock, TextSequence
    from pyhmmer.plan7 import Pipeline

    alphabet = hmm.alphabet
    block = DigitalSequenceBlock(
        alphabet,
        (TextSequence(name=str(i).encode(), sequence=s).digitize(alphabet) for i, s in enumerate(sequences)),
    )
    # a bit-score threshold (T), not an E-value, keeps the result independent of how many designs are scored
    pipeline = Pipeline(alphabet, T=0.0)
    scores = np.zeros(len(sequences), dtype=np.float64)
    for hit in pipeline.search_hmm(hmm, block):
        if hit.reported:
            name = hit.name.decode() if isinstance(hit.name, bytes) else hit.name
            scores[int(name)] = max(scores[int(name)], hit.score)
    return scores
