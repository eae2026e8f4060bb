"""Reading delimited and Parquet table files with exact line provenance for the rejects report."""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scenerec.errors import DataFormatError, MissingColumnError
from scenerec.loaders.rejects import RejectLog

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".txt")

# A quoted field may be as long as the file itself (pandas has no field limit either); the csv module's default
# limit of 131,072 characters would otherwise stop the read with ``_csv.Error``.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def decode_text(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """``data`` decoded; a :class:`DataFormatError` naming the file, byte offset, line and column otherwise."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        bad = data[exc.start : exc.end].hex(" ")
        raise DataFormatError(
            f"not {encoding} text ({exc.reason}: byte 0x{bad} at byte offset {exc.start}, column {column}); "
            f"save the file as {encoding}",
            file=path,
            line=line,
        ) from None
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark is not part of the header


def _physical_lines(text: str) -> list[str]:
    """The lines of ``text`` split as pandas and the csv module split records (``\\r\\n``, ``\\r`` or ``\\n``)."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def find_table(folder: Path, stem: str) -> Path | None:
    """The file ``folder/stem.{csv,tsv,parquet,txt}`` if exactly one exists."""
    hits = [folder / f"{stem}{s}" for s in TABLE_SUFFIXES if (folder / f"{stem}{s}").is_file()]
    if len(hits) > 1:
        raise DataFormatError(f"several files for table {stem!r}: {', '.join(h.name for h in hits)}", file=folder)
    return hits[0] if hits else None


def _sep_for(path: Path) -> str:
    return "," if path.suffix.lower() == ".csv" else "\t"


def _check_header(path: Path, header: Sequence[str]) -> None:
    """A header with a repeated column name (after stripping blanks) cannot be read unambiguously."""
    seen: set[str] = set()
    for name in (str(h).strip() for h in header):
        if name in seen:
            raise DataFormatError(f"column {name!r} appears twice in the header", file=path, line=1, column=name)
        seen.add(name)


def _has_short_rows(lines: list[str], sep: str) -> bool:
    """True if a non-blank line has fewer separators than the header (pandas would pad it with blanks).

    Called only when pandas parsed the file, so no line has more separators than the header: the total count of
    separators then equals header-count x data lines exactly when no line is short.
    """
    if not lines:
        return False
    want = lines[0].count(sep)
    data_lines = len(lines) - 1 - lines.count("")
    if sum(line.count(sep) for line in lines[1:]) == want * data_lines:
        return False
    return any(line.count(sep) < want for line in lines[1:] if line)


def _plain_lines(lines: list[str], n: int) -> pd.arrays.IntegerArray:
    """1-based line of each record of an unquoted file (blank lines are skipped, as pandas does)."""
    if "" not in lines:
        return pd.array(range(2, n + 2), dtype="Int64")
    numbers = [i for i, line in enumerate(lines[1:], start=2) if line]
    return pd.array(numbers[:n], dtype="Int64")


def _open_quote_at_end(text: str, line: int, sep: str) -> bool:
    """True if the record starting on physical ``line`` (1-based) holds a quote still open at the end of ``text``."""
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    tail = text[starts[line - 1] :] if line - 1 < len(starts) else ""
    if '"' not in tail:
        return False
    try:
        list(csv.reader(io.StringIO(tail, newline=""), delimiter=sep, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _read_with_csv_module(path: Path, text: str, sep: str, rejects: RejectLog) -> pd.DataFrame:
    """Slow path for files whose rows do not all have the header's field count: bad rows go to the rejects."""
    rows: list[list[str]] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader)
    except StopIteration:
        raise DataFormatError("file is empty (a header line is required)", file=path) from None
    except csv.Error as exc:
        raise DataFormatError(f"unreadable header ({exc})", file=path, line=1) from None
    _check_header(path, header)
    prev = reader.line_num
    last = 0  # line of the last non-blank record
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a quote opened and never closed: nothing after it can be split reliably
            raise DataFormatError(f"unreadable record ({exc})", file=path, line=prev + 1) from None
        start = prev + 1
        prev = reader.line_num
        if len(fields) == 0:
            continue
        last = start
        if len(fields) != len(header):
            rejects.add(str(path), start, f"expected {len(header)} fields, found {len(fields)}", action="dropped")
            continue
        rows.append(fields)
        lines.append(start)
    if lines and lines[-1] == last and _open_quote_at_end(text, last, sep):
        # The lenient reader ends a quote left open at the end of the file there: the rest of the file became one
        # field of this record. Drop it, reported, rather than keep a row that swallowed the lines after it.
        rows.pop()
        lines.pop()
        rejects.add(str(path), last, "quoted field not closed before the end of the file (opened on this line)")
    df = pd.DataFrame(rows, columns=header, dtype="string")
    df["_line"] = pd.array(lines, dtype="Int64")
    return df


def read_table(
    path: Path,
    rejects: RejectLog,
    *,
    required: Sequence[str] = (),
    sep: str | None = None,
    encoding: str = "utf-8",
    header_map: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file into string columns plus provenance ``_file`` and ``_line``.

    ``header_map`` renames columns after reading (e.g. RecBole's ``user_id:token`` -> ``user_id``).
    A missing required column raises :class:`MissingColumnError` naming the file and the column; a row with the
    wrong number of fields goes to ``rejects`` with its line number.
    For Parquet, ``_line`` is the 1-based row number.
    """
    if not path.is_file():
        raise DataFormatError("file not found", file=path)
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path)
        df = df.astype({c: "string" for c in df.columns})
        df["_line"] = pd.array(range(1, len(df) + 1), dtype="Int64")
    else:
        sep = sep or _sep_for(path)
        text = decode_text(path.read_bytes(), path, encoding)
        lines = _physical_lines(text)
        if not text.strip():
            raise DataFormatError("file is empty (a header line is required)", file=path)
        if not lines[0].strip():
            raise DataFormatError("the first line must be the header line, not a blank line", file=path, line=1)
        if '"' not in lines[0]:
            _check_header(path, lines[0].split(sep))
        try:
            df = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype="string",
                keep_default_na=False,
                na_values=[],
                skip_blank_lines=True,
                quoting=csv.QUOTE_MINIMAL,
            )
        except pd.errors.ParserError:
            df = _read_with_csv_module(path, text, sep, rejects)
        except pd.errors.EmptyDataError:
            raise DataFormatError("file is empty (a header line is required)", file=path) from None
        else:
            if '"' in text or "\x00" in text or _has_short_rows(lines, sep):
                # Quoted fields may span lines, and pandas pads short rows silently: the csv module reads such
                # files exactly, with the physical line of each record and every wrong field count reported.
                df = _read_with_csv_module(path, text, sep, rejects)
            else:
                df["_line"] = _plain_lines(lines, len(df))
    df.columns = [str(c).strip() for c in df.columns]
    if header_map:
        df = df.rename(columns=header_map)
    for col in required:
        if col not in df.columns:
            raise MissingColumnError(path, col, [c for c in df.columns if not c.startswith("_")])
    df["_file"] = pd.array([str(path)] * len(df), dtype="string")
    return df


def read_headerless(
    path: Path, names: Sequence[str], rejects: RejectLog, *, sep: str = "\t", encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a delimited file without a header line into string columns ``names`` plus ``_file`` / ``_line``.

    Fields are split on ``sep`` exactly (no quoting: identifiers such as URIs may contain quotes); surrounding
    whitespace and ``\\r`` are stripped. Blank lines are skipped; a line with the wrong number of fields goes to
    ``rejects`` with its 1-based line number.
    """
    if not path.is_file():
        raise DataFormatError("file not found", file=path)
    text = decode_text(path.read_bytes(), path, encoding)
    n = len(names)
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    rows = [ln.rstrip("\r").split(sep) for ln in raw_lines]
    lines = [i for i, r in enumerate(rows, start=1) if len(r) == n]
    if len(lines) != len(rows):
        for lineno, r in enumerate(rows, start=1):
            if len(r) != n and (len(r) > 1 or r[0].strip()):  # blank lines are skipped silently
                rejects.add(
                    str(path),
                    lineno,
                    f"expected {n} fields ({', '.join(names)}) separated by {sep!r}, found {len(r)}",
                )
        rows = [rows[i - 1] for i in lines]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    df = pd.DataFrame(
        {name: pd.array([v.strip() for v in col], dtype="string") for name, col in zip(names, columns, strict=True)}
    )
    df["_line"] = pd.array(lines, dtype="Int64")
    df["_file"] = pd.array([str(path)] * len(df), dtype="string")
    return df
