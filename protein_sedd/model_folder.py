"""The model folder's layout, the one place its file names live (a checkpoint, a saved model, a run's
`checkpoint/`): the weights as safetensors and the resolved config as YAML. Imports nothing heavy, so the
output-safety checks that recognise a model folder load no torch."""

WEIGHTS = "model.safetensors"  # the (EMA) weights
CONFIG = "config.yaml"  # the resolved run config: model, graph, noise, alphabet, lengths, data record
CHECKPOINT_DIR = "checkpoint"  # inside a run directory
