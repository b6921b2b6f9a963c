"""Report tables: rich on a terminal, plain rows (one line each, never folded) in logs and pipes."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from protein_sedd.evaluation.reports import plain_table, print_tables

LONG_ID = "tr|A0A2N5VJ31|A0A2N5VJ31_9BACT Acylphosphatase OS=Bacteria bacterium HGW-Bacteria-1 OX=2013850"


def _table() -> Table:
    table = Table(title="top picks")
    table.add_column("id")
    table.add_column("bits", justify="right")
    table.add_row("d1", "114.9")
    table.add_row(LONG_ID, "7.0")
    return table


def test_plain_table_pads_columns_and_right_aligns_numbers():
    assert plain_table(_table()).splitlines() == [
        "top picks",
        "id" + " " * (len(LONG_ID) - 2) + "   bits",
        "d1" + " " * (len(LONG_ID) - 2) + "  114.9",
        LONG_ID + "    7.0",
    ]


def test_plain_table_without_header_or_title():
    table = Table(show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("n", "6")
    table.add_row("family_pass_rate", "0.667")
    assert plain_table(table) == "n                     6\nfamily_pass_rate  0.667"


def test_off_a_terminal_a_long_id_stays_on_one_line():
    stream = io.StringIO()
    print_tables(_table(), console=Console(file=stream, width=80))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "top picks" and lines[-1] == LONG_ID + "    7.0"


def test_on_a_terminal_the_table_is_rich():
    console = Console(file=io.StringIO(), width=80, force_terminal=True, record=True)
    print_tables(_table(), console=console)
    text = console.export_text()
    assert "┃" in text or "│" in text  # rich's box drawing, folded to the terminal's width
    assert max(len(line) for line in text.splitlines()) <= 80
