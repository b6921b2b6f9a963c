"""Save a trained run into the package as the bundled default model, with its provenance.

    python workflows/bundle_model.py RUN_DIR --evaluation test.json [--name acyp-tiny]

The bundled model is a saved model folder (`ProteinSEDD.save_pretrained`): the EMA weights, the config,
provenance.json (the data file and its sha256, the split sizes, the training steps and command, the
held-out metrics given) and a README.md model card; no optimiser state.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

import protein_sedd

PACKAGE = Path(__file__).resolve().parents[1] / "protein_sedd" / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--evaluation", type=Path, action="append", default=[], help="evaluate --json outputs"
    )
    parser.add_argument("--command", default="", help="the training command, for the record")
    parser.add_argument("--name", default="acyp-tiny")
    args = parser.parse_args()
    model = protein_sedd.load(args.run, "cpu")  # refuses anything that is not a loadable checkpoint
    target = PACKAGE / args.name
    config = model.config
    evaluations = [json.loads(p.read_text()) for p in args.evaluation]
    provenance = {
        "name": args.name,
        "data": {"dataset": config.data.name, "sha256": config.dataset.sha256,
                 **{k: config.dataset[k] for k in ("n_train", "n_valid", "n_test", "n_duplicates_removed")}},
        "split": OmegaConf.to_container(config.data),
        "model": OmegaConf.to_container(config.model),
        "parameters": model.network.num_parameters(),
        "steps": int(config.step),
        "trainer": OmegaConf.to_container(config.trainer),
        "command": args.command,
        "evaluations": [{k: v for k, v in e.items() if k != "per_sequence"} for e in evaluations],
    }  # fmt: skip
    model.save_pretrained(target, provenance=provenance)
    print(f"bundled {args.run} (step {config.step}) -> {target}")


if __name__ == "__main__":
    main()
