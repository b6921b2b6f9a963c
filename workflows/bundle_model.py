"""Copy a trained run into the package as the bundled default model, with its provenance.

    python workflows/bundle_model.py RUN_DIR --evaluation test.json [--name acyp-tiny]

Only the EMA weights and the config travel (no optimiser state); provenance.json records the data file
and its sha256, the split sizes, the training steps and command, and the held-out metrics given.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from protein_sedd.atomic import write_json_atomic
from protein_sedd.checkpoint import load_checkpoint

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
    checkpoint = load_checkpoint(args.run)  # refuses anything that is not a loadable checkpoint
    target = PACKAGE / args.name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint.path / "model.safetensors", target / "model.safetensors")
    shutil.copyfile(checkpoint.path / "config.yaml", target / "config.yaml")
    config = checkpoint.config
    evaluations = [json.loads(p.read_text()) for p in args.evaluation]
    provenance = {
        "name": args.name,
        "data": {"dataset": config.data.name, "sha256": config.dataset.sha256,
                 **{k: config.dataset[k] for k in ("n_train", "n_valid", "n_test", "n_duplicates_removed")}},
        "split": OmegaConf.to_container(config.data),
        "model": OmegaConf.to_container(config.model),
        "parameters": checkpoint.model.num_parameters(),
        "steps": int(config.step),
        "trainer": OmegaConf.to_container(config.trainer),
        "command": args.command,
        "evaluations": [{k: v for k, v in e.items() if k != "per_sequence"} for e in evaluations],
    }  # fmt: skip
    write_json_atomic(target / "provenance.json", provenance)
    print(f"bundled {args.run} (step {config.step}) -> {target}")


if __name__ == "__main__":
    main()
