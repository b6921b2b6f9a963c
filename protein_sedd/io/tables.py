"""Reading a user's CSV table as text columns, every failure one line naming the file.

Values stay exactly as written (no NA guessing, no type inference): each reader converts and checks the
columns it needs and names the row of a bad value itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from protein_sedd.errors import UserError

MAX_TABLE_BYTES = 2 * 1024**3


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
