"""Models: the score network, a DDiT transformer (rotary attention, adaLN time conditioning: ddit,
attention, rotary); a trained model with its graph, noise, length prior and representation (trained); the
model folder's one writer and reader (folder); where a model comes from, a path, a run, a bundled name or
a Hub id (sources, hub).

`DDiT` and `DDiTConfig` are imported on first use, so that reading a folder's file names stays torch-free.
"""

__all__ = ["DDiT", "DDiTConfig"]


def __getattr__(name: str):
    if name == "DDiTConfig":
        from protein_sedd.model.config import DDiTConfig

        return DDiTConfig
    if name == "DDiT":
        from protein_sedd.model.ddit import DDiT

        return DDiT
    raise AttributeError(f"module 'protein_sedd.model' has no attribute {name!r}")
