"""The wheel ships every package: pyproject.toml lists its packages by hand (the configs and manifests are
mapped in from top-level folders), so a new package folder missing there would install without it."""

from __future__ import annotations

import tomllib

from .conftest import REPO


def test_every_package_folder_is_listed_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "protein_sedd").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    mapped = set(project["tool"]["setuptools"]["package-dir"]) - {"protein_sedd"}  # configs/, data/
    assert folders <= listed, sorted(folders - listed)
    assert listed - folders == mapped  # nothing listed that does not exist
