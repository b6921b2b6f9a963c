"""Reading a user's CSV table as text columns, every failure one line naming the file.

Values stay exactly as written (no NA guessing, no type inference, whatever pandas version reads them):
each reader converts the columns it needs with `numeric_column`, which knows one missing-value spelling
list and one number syntax, and names the row, column and value of the first bad cell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from protein_sedd.errors import UserError

MAX_TABLE_BYTES = 2 * 1024**3
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "NAN", "null", "None"})  # how tables spell "unmeasured"
# a plain decimal number as tables write them: not Python's wider float() syntax (1_000, full-width
# digits), which pandas and other tools read differently or not at all
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def read_text_table(path: Path, option: str, expected: str) -> pd.DataFrame:
    """The CSV at `path` as a DataFrame of str; `option` is the flag, `expected` what the file should be."""
    path = Path(path)
    if str(path) == "-":
        raise UserError(f"{option} -: reading standard input is not supported; save the table to a file")
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected {expected}")
    if path.is_file() and path.stat().st_size > MAX_TABLE_BYTES:
        raise UserError(f"{path}: larger than {MAX_TABLE_BYTES:_} bytes; split the table")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file, expected {expected} with a header line") from None
    except pd.errors.ParserError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "malformed"
        raise UserError(f"{path}: not a valid CSV table ({reason})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the file ({err.strerror or type(err).__name__})") from None


def parse_number(value) -> float:
    """A cell as a float, NaN where it is missing (`MISSING`, None, NaN); ValueError where it is text that
    is not a plain decimal number ('high', '1_000', full-width digits) or a number that is not finite."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        if math.isnan(number):  # a float32 or other NaN: missing, as a float NaN is
            return math.nan
    else:
        text = str(value).strip()
        if text in MISSING:
            return math.nan
        if not NUMBER.fullmatch(text) or not text.isascii():
            raise ValueError(f"{text!r} is not a number")
        number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def numeric_column(
    table: pd.DataFrame,
    column: str,
    where: Callable[[int], str],
    *,
    missing_ok: bool,
    hint: str = "",
    field: str | None = None,
) -> np.ndarray:
    """`table[column]` as float64 (NaN where missing, when `missing_ok`); the first bad cell is a UserError
    "{where(row)}: {column} {value!r} is not a number{hint}" (row 0-based; `field`: the parameter that
    `where` names as `{field}`)."""
    values = np.empty(len(table), dtype=float)
    for row, value in enumerate(table[column].tolist()):
        try:
            values[row] = parse_number(value)
        except ValueError as err:
            raise UserError(f"{where(row)}: {column} {err}{hint}", field=field) from None
        if not missing_ok and math.isnan(values[row]):
            raise UserError(f"{where(row)}: {column} is missing ({value!r}){hint}", field=field)
    return values
