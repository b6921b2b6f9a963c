"""`protein-sedd prepare-data`: tokenise a FASTA file into the token cache ahead of training."""

from __future__ import annotations

from pathlib import Path

import typer

OUTCOMES = {
    "built": "built",
    "rebuilt": "rebuilt (it was damaged)",
    "reused": "reused (checked by file size and time; --verify hashes every file)",
    "verified": "verified (every file hashed)",
}


def prepare_data(
    fasta: Path = typer.Option(
        ...,
        "--fasta",
        help="FASTA file (plain or gzip) to tokenise; `train --fasta` on it then starts at once.",
    ),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Hash the FASTA and every cache file in full (other uses trust a file whose stat is unchanged "
        "since it was last hashed); a damaged cache is rebuilt.",
    ),
) -> None:
    """Tokenise a FASTA file into the memory-mapped token cache that train and evaluate read.

    The cache is $XDG_CACHE_HOME/protein-sedd/tokens (default ~/.cache), keyed by the file's sha256 and
    checked on every use. Before a multi-node run, run this once on each node (or share the cache folder).
    """
    from protein_sedd.data.cache.tokens import cache_folder, token_cache

    how: list[str] = []
    store, sha256 = token_cache(fasta, verify=verify, outcome=how.append)
    residues = int(store.offsets[-1])
    typer.echo(f"{fasta}: {len(store):,} records, {residues:,} residues (sha256 {sha256[:12]}...)")
    typer.echo(f"token cache {OUTCOMES[how[0]]}: {cache_folder(sha256)}")
