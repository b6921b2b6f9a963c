"""The `protein-sedd` command line: thin Typer commands over the package's modules.

User mistakes (`UserError`, bad options) end with exit code 2 and one line on stderr; see `main`.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.22 vendors click; older releases use the click package
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

from protein_sedd.errors import UserError

app = typer.Typer(
    name="protein-sedd",
    help="Protein sequence design with Score Entropy Discrete Diffusion (SEDD).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from protein_sedd import __version__

        print(f"protein-sedd {__version__}")
        raise typer.Exit(0)


@app.callback()
def _top(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Protein sequence design with Score Entropy Discrete Diffusion (SEDD)."""


# Commands are registered here, one module each under protein_sedd/commands/.
# -- commands --
from protein_sedd.commands import (  # noqa: E402
    design,
    evaluate,
    fold_eval,
    prepare_data,
    report,
    score_variants,
    select,
    seq_eval,
    train,
    train_guide,
)

app.command("train")(train.train)
app.command("prepare-data")(prepare_data.prepare_data)
app.command("evaluate")(evaluate.evaluate)
app.command("design")(design.design)
app.command("fold-eval")(fold_eval.fold_eval)
app.command("seq-eval")(seq_eval.seq_eval)
app.command("select")(select.select)
app.command("score-variants")(score_variants.score_variants)
app.command("train-guide")(train_guide.train_guide)
app.command("report")(report.report)


# A library error names the Python parameter (`UserError(field="batch_size")`); here it becomes the flag.
# Every parameter is the flag of its name (batch_size -> --batch-size) except these:
# load(source) is --checkpoint; evaluate(sequences) reads a FASTA file from the shell
FLAGS = {"mutants": "--variants", "source": "--checkpoint", "sequences": "--fasta"}


def flag(field: str) -> str:
    """The command-line flag of a library parameter."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _fail(message: str) -> int:
    from protein_sedd.runtime.distributed import is_main_process

    if is_main_process():  # N torchrun ranks meet the same mistake; one line is enough
        print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of raising SystemExit."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="protein-sedd", standalone_mode=False)
    except UserError as err:
        return _fail(err.message(flag))
    except click_errors.NoArgsIsHelpError as err:
        print(err.ctx.get_help() if err.ctx else "", file=sys.stderr)
        return 2
    except click_errors.UsageError as err:
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
        return _fail(f"{err.format_message()}{hint}")
    except typer.Exit as err:
        return err.exit_code
    except typer.Abort:
        return _fail("aborted")
    except click_errors.ClickException as err:
        return _fail(err.format_message())
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point (and `python -m protein_sedd`): OpenMP's settings first, while torch is
    not loaded yet (devices.calm_openmp), then the command."""
    from protein_sedd.runtime.devices import calm_openmp

    calm_openmp()
    sys.exit(main())
