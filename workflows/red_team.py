"""A red team of hostile inputs through the commands and the Python API: each must end in one clear line.

    python workflows/red_team.py            # every case; prints the ones that did not hold, then the counts

A case holds when the command exits 2 with exactly one `error:` line on stderr and no traceback (or the API
raises `protein_sedd.UserError` with a one-line message), and leaves no output behind. The cases are the
classes the last red team found (types, missing values, tampered files, Hub ids, silent filters): a quick
check after a change, not a replacement for the tests, which assert each message exactly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WILD_TYPE = "MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE"


def command_cases(work: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of each hostile command line, with the files it needs written into `work`."""
    wt = work / "wt.fasta"
    wt.write_text(f">wt\n{WILD_TYPE}\n")
    designs = work / "designs.fasta"
    designs.write_text(f">d1\n{WILD_TYPE}\n>d2\n{WILD_TYPE[:-3]}AAA\n")
    cases = []
    for name, cell in [
        ("dms-1_000", "1_000"),
        ("dms-fullwidth", "\uff11"),
        ("dms-word", "high"),
        ("dms-inf", "inf"),
    ]:
        table = work / f"{name}.csv"
        table.write_text(f"mutant,DMS_score\nM1A,0.5\nS2A,{cell}\n")
        cases.append(
            (
                name,
                ["score-variants", "--wildtype", wt, "--variants", table, "--out", work / f"{name}.out.csv"],
            )
        )
    seq = work / "seq"
    seq.mkdir()
    for name, bits in [("seq-eval-blank", ""), ("seq-eval-nan", "nan"), ("seq-eval-word", "high")]:
        (seq / "results.csv").write_text(
            f"id,family_bits,nearest_identity,nearest_id,low_complexity\nd1,100,0.5,n,False\nd2,{bits},0.5,n,False\n"
        )
        folder = work / name
        shutil.copytree(seq, folder)
        cases.append((name, ["select", designs, "--seq-eval", folder, "--out", work / f"{name}.picks"]))
    cases.append(("select-min-plddt-without-fold", ["select", designs, "--seq-eval", seq, "--min-plddt", "50",
                                                    "--out", work / "p.picks"]))  # fmt: skip
    for name, source in [("hub-double-dash", "some--user/repo"), ("hub-dotdot", "nouser/.."),
                         ("hub-long", "u/" + "a" * 200)]:  # fmt: skip
        cases.append((name, ["design", "--checkpoint", source, "--n", "2", "--out", work / f"{name}.fasta"]))
    cut = work / "cut.sto"
    cut.write_text("# STOCKHOLM 1.0\nfocus  MKVLAGHEWR\nr2     MKVLSGHEWR\n\n")
    cases.append(("stockholm-cut", ["train", "--fasta", cut, "--out", work / "cut.run", "--max-steps", "1"]))
    labels = work / "huge.csv"
    labels.write_text("sequence,label\n" + "".join(f"MKVLAGHEWR,{(-1) ** i}e300\n" for i in range(10)))
    cases.append(("guide-labels-1e300", ["train-guide", "--labels", labels, "--out", work / "huge.guide"]))
    cases.append(
        ("design-precision", ["design", "--n", "2", "--precision", "half", "--out", work / "x.fasta"])
    )
    for name, part in [
        ("report-seq-eval-cut", ["--seq-eval", work / "seq-eval-blank"]),
        ("report-designs-csv", ["--designs", labels]),
        ("report-run-is-seq", ["--run", seq]),
    ]:
        cases.append((name, ["report", *part, "--out", work / f"{name}.html"]))  # fmt: skip
    fasta = work / "fam.fa"
    fasta.write_text(f">a\n{WILD_TYPE}\n>b\n{WILD_TYPE[:-2]}GG\n")
    notesm = work / "not-esm"
    notesm.mkdir()
    (notesm / "config.json").write_text('{"model_type": "bert"}')
    for name, pretrained in [("esm2-missing-folder", "./nope"), ("esm2-not-esm", notesm)]:
        cases.append((name, ["train", "--fasta", fasta, "--out", work / f"{name}.run", "model=esm2",
                             f"model.pretrained={pretrained}"]))  # fmt: skip
    cases.append(
        ("esm2-empty-id", ["design", "--checkpoint", "esm2:", "--n", "2", "--out", work / "e.fasta"])
    )
    return cases


def api_cases(work: Path) -> list[tuple[str, object]]:
    import protein_sedd

    model = protein_sedd.load("acyp-tiny", "cpu")
    return [
        ("load(123)", lambda: protein_sedd.load(123)),
        ("load(revision=5)", lambda: protein_sedd.load("acyp-tiny", "cpu", revision=5)),
        ("load_guide(123)", lambda: protein_sedd.load_guide(123)),
        ("design(2.5)", lambda: model.design(2.5, progress=False)),
        ("design(lengths=[10.9])", lambda: model.design(1, lengths=[10.9], progress=False)),
        ("design(progress='x')", lambda: model.design(2, progress="x")),
        ("score(seed=2**70)", lambda: model.score([WILD_TYPE], seed=2**70)),
        ("score(None)", lambda: model.score(None)),
        ("score_variants(wt, None)", lambda: model.score_variants(WILD_TYPE, None)),
        ("save_pretrained(123)", lambda: model.save_pretrained(123)),
        ("save_pretrained(provenance=[])", lambda: model.save_pretrained(work / "s1", provenance=["a"])),
        (
            "save_pretrained(provenance=object)",
            lambda: model.save_pretrained(work / "s2", provenance={"x": object()}),
        ),
        ("train_guide(NaN label)", lambda: _guide(model, labels=[0, 1] * 4 + [float("nan"), 1])),
        (
            "train_guide(None sequence)",
            lambda: _guide(model, sequences=[WILD_TYPE] * 3 + [None] + [WILD_TYPE] * 6),
        ),
        ("train_guide(steps=2.5)", lambda: _guide(model, steps=2.5)),
        ("report(123)", lambda: protein_sedd.report(123, designs=work / "designs.fasta")),
        (
            "report(title=5)",
            lambda: protein_sedd.report(work / "t.html", designs=work / "designs.fasta", title=5),
        ),
        ("report(run=[...])", lambda: protein_sedd.report(work / "l.html", run=[work])),
    ]


def _guide(model, labels=None, sequences=None, steps=2):
    import pandas as pd

    labels = labels or [0, 1] * 5
    sequences = sequences or [WILD_TYPE] * 10
    return model.train_guide(pd.DataFrame({"sequence": sequences, "label": labels}), steps=steps)


def main() -> int:
    from protein_sedd.errors import UserError

    held = failed = 0
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        before = set(work.iterdir())
        for name, argv in command_cases(work):
            before = set(work.iterdir())
            done = subprocess.run(
                [sys.executable, "-m", "protein_sedd", *map(str, argv)], capture_output=True, text=True
            )
            lines = [line for line in done.stderr.strip().splitlines() if line.startswith("error")]
            made = set(work.iterdir()) - before
            ok = done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr and not made
            held, failed = held + ok, failed + (not ok)
            if not ok:
                print(
                    f"DID NOT HOLD {name}: exit {done.returncode}; {done.stderr.strip()[-300:]}; made {made}"
                )
        for name, call in api_cases(work):
            before = set(work.iterdir())
            try:
                call()
                ok, what = False, "no error"
            except UserError as err:
                ok, what = "\n" not in str(err), str(err)
            except Exception as err:  # noqa: BLE001 (the point: anything but UserError is a failure)
                ok, what = False, f"{type(err).__name__}: {err}"
            ok = ok and set(work.iterdir()) == before
            held, failed = held + ok, failed + (not ok)
            if not ok:
                print(f"DID NOT HOLD {name}: {what[:300]}")
    print(json.dumps({"held": held, "did_not_hold": failed}))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
