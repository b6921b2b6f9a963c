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


def test_moved_modules_keep_their_old_names():
    import importlib

    from protein_sedd.moved import MOVED

    for old, new in MOVED.items():
        assert not (REPO / (old.replace(".", "/") + ".py")).exists(), old  # the table shadows nothing
        module = importlib.import_module(old)
        assert module is importlib.import_module(new) and module.__name__ == new, old
    from protein_sedd.data.fasta import read_fasta

    from protein_sedd.io.fasta import read_fasta as moved_read_fasta

    assert read_fasta is moved_read_fasta


def test_version_is_the_projects_and_the_command_prints_it(capsys):
    from protein_sedd import __version__
    from protein_sedd.cli import main

    assert __version__ == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"protein-sedd {__version__}\n"
