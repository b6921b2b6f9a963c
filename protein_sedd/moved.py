"""Modules that moved when the package was given one folder per concern, still importable by their old
names, so that users' scripts and notebooks keep working: `import protein_sedd.checkpoint` gives the module
`protein_sedd.model.sources` itself (the same object: patching one patches the other).

New code imports the new names; this table is the only place the old ones live.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "protein_sedd.atomic": "protein_sedd.io.atomic",
    "protein_sedd.outputs": "protein_sedd.io.outputs",
    "protein_sedd.paths": "protein_sedd.io.paths",
    "protein_sedd.data.fasta": "protein_sedd.io.fasta",
    "protein_sedd.data.alignment": "protein_sedd.io.alignment",
    "protein_sedd.data.csv_tables": "protein_sedd.io.tables",
    "protein_sedd.config_checks": "protein_sedd.config.checks",
    "protein_sedd.config_files": "protein_sedd.config.files",
    "protein_sedd.limits": "protein_sedd.config.limits",
    "protein_sedd.devices": "protein_sedd.runtime.devices",
    "protein_sedd.distributed": "protein_sedd.runtime.distributed",
    "protein_sedd.progress": "protein_sedd.runtime.progress",
    "protein_sedd.checkpoint": "protein_sedd.model.sources",
    "protein_sedd.hub": "protein_sedd.model.hub",
    "protein_sedd.model_folder": "protein_sedd.model.folder",
    "protein_sedd.data.token_cache": "protein_sedd.data.cache.tokens",
    "protein_sedd.data.token_store": "protein_sedd.data.cache.store",
    "protein_sedd.data.hash_memo": "protein_sedd.data.cache.hash_memo",
    "protein_sedd.data.build_owner": "protein_sedd.data.cache.build_owner",
    "protein_sedd.data.record_columns": "protein_sedd.data.cache.record_columns",
    "protein_sedd.data.fragments": "protein_sedd.data.family.fragments",
    "protein_sedd.data.weights": "protein_sedd.data.family.weights",
    "protein_sedd.evaluation.tiny_esmfold": "protein_sedd.testing.tiny_esmfold",
    "protein_sedd.evaluation.likelihood": "protein_sedd.evaluation.likelihood_report",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Consulted last: an old name resolves to the module at its new one."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        """Already executed under its new name."""


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
