"""Models that ship inside the package, so `protein-sedd design` works right after installing.

`acyp-tiny/` holds model.safetensors (EMA weights), config.yaml and provenance.json (data, split,
steps, command and held-out metrics); `workflows/bundle_model.py` writes it from a run directory.
They are found by name through `protein_sedd.model.sources` (`bundled_checkpoint`, `load_checkpoint`).
"""
