"""protein-sedd: protein sequence design with Score Entropy Discrete Diffusion.

    import protein_sedd
    model = protein_sedd.load("acyp-tiny")
    designs = model.design(10, steps=256, seed=0)

The public names are listed in `__all__`; `protein_sedd.api` holds them. They are imported on first use,
so `import protein_sedd` (and the command line) stays quick.
"""

from protein_sedd import moved
from protein_sedd.errors import UserError

moved.install()  # old module names (protein_sedd/moved.py)

__version__ = "0.1.0"
__all__ = [
    "Design", "Designs", "ProteinSEDD", "UserError", "__version__", "load", "load_guide", "report", "train"
]  # fmt: skip
_API = {"Design", "Designs", "ProteinSEDD", "load", "load_guide", "train"}


def __getattr__(name: str):
    if name == "report":  # protein_sedd.report(out=..., run=..., ...): the `report` command's function
        from protein_sedd.campaign import write_report

        return write_report
    if name in _API:
        from protein_sedd import api

        return getattr(api, name)
    raise AttributeError(f"module 'protein_sedd' has no attribute {name!r}")
