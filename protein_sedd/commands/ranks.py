"""`--devices N`: rerun the command the user typed as N local torchrun ranks."""

from __future__ import annotations

import typer

from protein_sedd.runtime.distributed import launch_ranks


def arguments_given(ctx: typer.Context, leave_out: str) -> list[str]:
    """The command line again from what the user gave (defaults stay defaults), less option `leave_out`."""
    options: list[str] = [ctx.info_name]
    positionals: list[str] = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name == leave_out or source is None or source.name == "DEFAULT":
            continue
        value = ctx.params[param.name]
        if param.param_type_name == "argument":
            positionals += [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
        elif param.is_flag:
            if param.secondary_opts:  # --cache/--no-cache
                options.append(param.opts[0] if value else param.secondary_opts[0])
            elif value:
                options.append(param.opts[0])
        else:
            for item in value if param.multiple else [value]:
                options += [param.opts[0], str(item)]
    return [*options, "--", *positionals] if positionals else options


def run_on_ranks(ctx: typer.Context, devices: int) -> None:
    """Launch the command on `devices` ranks and end with their exit code."""
    raise typer.Exit(launch_ranks(devices, arguments_given(ctx, leave_out="devices")))
