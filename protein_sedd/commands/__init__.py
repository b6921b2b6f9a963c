"""One module per `protein-sedd` subcommand; each holds a Typer command function."""
