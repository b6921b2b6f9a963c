"""The score network: a DDiT transformer (rotary attention, adaLN time conditioning)."""

from protein_sedd.model.ddit import DDiT, DDiTConfig

__all__ = ["DDiT", "DDiTConfig"]
