"""Property-based fuzzing of the input side (issue 14): the generic loader and ``scenerec rebuild`` on arbitrary
tables -- random column subsets, shapes, cell strings (quotes, newlines, NULs, huge numbers, unicode), duplicated ids,
dangling references -- and on arbitrary bytes (invalid UTF-8).

The rule: a load either succeeds, and then every record written to a table file is accounted for (kept rows of that
file + its dropped or merged rejects = records written), or it fails with one :class:`ScenerecError` whose message is
one line; ``rebuild`` exits 0 with a store whose counts match the load, or non-zero with one ``error:`` line on stderr
and no traceback. Any other exception fails the test. The example budget is fixed and derandomised so that the suite
takes about a minute.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scenerec.cli import main
from scenerec.errors import ScenerecError
from scenerec.kg import read_manifest
from scenerec.loaders import LoadOptions, RejectLog, get_loader, load_dataset
from scenerec.loaders.cleaning import clean
from scenerec.records import Dataset

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
FUZZ_BYTES = settings(FUZZ, max_examples=250)
FUZZ_CLI = settings(FUZZ, max_examples=80)

#: Each table of the generic format: its required columns, then optional ones.
TABLES: dict[str, tuple[list[str], list[str]]] = {
    "items": (["item_id", "scene"], ["title", "description", "brand"]),
    "interactions": (["user_id", "item_id"], ["timestamp", "rating", "split", "weight"]),
    "triples": (["head", "relation", "tail"], []),
    "entities": (["entity_id"], ["type", "name", "scene"]),
    "users": (["user_id"], ["age"]),
    "scenes": (["scene_id"], ["name", "description"]),
    "alignment": (["left_id", "right_id"], ["score"]),
}

IDS = ["i0", "i1", "i2", "i3", " i1 ", "u0", "u1", "u2", "b0", "e0", "books", "music", "BOOKS"]
SPECIAL = [
    "",
    " ",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "1e30",
    "1e308",
    "-1e308",
    "1e400",
    "0",
    "-0",
    "5",
    "3.5",
    "1600000000000",
    "9223372036855",
    "2021-01-01T00:00:00Z",
    "3000-01-01",
    "1500-01-01",
    "0001-01-01",
    "9999-12-31T23:59:59Z",
    "train",
    "valid",
    "TEST",
    "holdout",
    '"',
    '""',
    'a "quoted" word',
    "a,b",
    "a\tb",
    "line\nbreak",
    "cr\rreturn",
    "nul\x00byte",
    "\ufeffbom",
    "é",
    "😀",
    "\u2028sep",
    "#comment",
    "x" * 140_000,
]
CELL = st.one_of(
    st.sampled_from(IDS),
    st.sampled_from(SPECIAL),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
#: Cells of id columns come mostly from a small pool, so that ids repeat and references resolve (or dangle).
ID_COLUMNS = {"item_id", "scene", "user_id", "head", "tail", "entity_id", "scene_id", "left_id", "right_id"}
ID_CELL = st.one_of(st.sampled_from(IDS), st.sampled_from(IDS), st.sampled_from(IDS), CELL)
COLUMN_NAME = st.one_of(st.sampled_from(["title", "brand", "_line", "x"]), st.text(min_size=1, max_size=6))


@dataclass
class Table:
    name: str
    suffix: str
    header: list[str]
    rows: list[list[str]]
    quoting: int
    newline: str

    def text(self) -> str:
        buf = io.StringIO()
        # The csv module quotes a field holding a line break only if the break is in its line terminator: quote every
        # field then, so that each row written stays one record.
        breaks = any("\r" in c or "\n" in c for row in [self.header, *self.rows] for c in row)
        quoting = csv.QUOTE_ALL if breaks else self.quoting
        writer = csv.writer(
            buf, delimiter="," if self.suffix == ".csv" else "\t", quoting=quoting, lineterminator=self.newline
        )
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buf.getvalue()


@st.composite
def tables(draw: st.DrawFn, name: str, drop_required: bool = False) -> Table:
    required, optional = TABLES[name]
    # Every required column unless ``drop_required`` (then the load fails cleanly), a random subset of the optional
    # ones, and sometimes a column of arbitrary name.
    header = [c for c in required if not drop_required or draw(st.booleans())]
    header += [c for c in optional if draw(st.booleans())]
    if draw(st.integers(0, 4)) == 0:
        header.append(draw(COLUMN_NAME))
    header = draw(st.permutations(header)) if header else [draw(COLUMN_NAME)]
    width = len(header)
    # Mostly the header's width; sometimes a short or long record (never an empty one: it would be a blank line).
    row_width = st.one_of(st.just(width), st.integers(min_value=1, max_value=width + 2))
    cells = [ID_CELL if c in ID_COLUMNS else CELL for c in header]

    def row(n: int) -> st.SearchStrategy[list[str]]:
        return st.tuples(*[cells[j] if j < width else CELL for j in range(n)]).map(list)

    rows = draw(st.lists(row_width.flatmap(row), max_size=8))
    return Table(
        name,
        draw(st.sampled_from([".csv", ".tsv"])),
        header,
        rows,
        draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
        draw(st.sampled_from(["\n", "\r\n"])),
    )


@st.composite
def datasets(draw: st.DrawFn) -> list[Table]:
    drop_required = draw(st.integers(0, 9)) == 0  # about one dataset in ten misses a required column or more
    out = [draw(tables("items", drop_required))]
    for name in TABLES:
        if name == "items":
            continue
        # interactions in two datasets out of three, each other table in one out of four
        if draw(st.integers(0, 2)) > 0 if name == "interactions" else draw(st.integers(0, 3)) == 0:
            out.append(draw(tables(name, drop_required)))
    return out


@contextlib.contextmanager
def folder() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        (root / "ds").mkdir()
        yield root / "ds"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write(d: Path, tabs: list[Table]) -> dict[str, int]:
    """Write the tables; return the number of records of each file."""
    counts = {}
    for t in tabs:
        path = d / f"{t.name}{t.suffix}"
        path.write_bytes(t.text().encode("utf-8"))
        counts[str(path)] = len(t.rows)
    return counts


def one_line(exc: BaseException) -> None:
    msg = str(exc)
    assert msg and len(msg.splitlines()) == 1, f"error message is not one line: {msg!r}"


def stored_per_file(ds: Dataset) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in Dataset.TABLE_NAMES:
        table = ds.table(name)
        if "_file" in table.columns:
            for f, n in table["_file"].dropna().value_counts().items():
                out[str(f)] = out.get(str(f), 0) + int(n)
    return out


def check_load(d: Path, written: dict[str, int] | None, allow_empty: bool = False) -> None:
    """The loader's rule; with ``written`` (records per file) the per-file accounting too."""
    try:
        result = load_dataset(d, format="generic", options=LoadOptions(allow_empty=allow_empty))
    except ScenerecError as exc:
        one_line(exc)
        event(f"load failed: {type(exc).__name__}: {getattr(exc, 'reason', str(exc)).split('(')[0][:40]}")
        loaded = None
    else:
        event("load succeeded")
        event(f"rows kept: {'some' if sum(result.dataset.counts().values()) else 'none'}")
        loaded = result
    # The same load with provenance kept (what load_dataset checks for empty files) for the per-file accounting.
    rejects = RejectLog()
    try:
        raw = get_loader("generic").read(d, rejects, LoadOptions())
        cleaned = clean(raw, rejects, LoadOptions(), keep_provenance=True)
    except ScenerecError as exc:
        one_line(exc)
        assert loaded is None, "load_dataset succeeded where reading and cleaning fail"
        return
    frame = rejects.to_frame()
    removed = frame[frame["action"].isin(["dropped", "merged"])].groupby("file").size()
    stored = stored_per_file(cleaned)
    if written is not None:
        for file, n in written.items():
            got = stored.get(file, 0) + int(removed.get(file, 0))
            assert got == n, f"{Path(file).name}: {stored.get(file, 0)} kept + {removed.get(file, 0)} rejected != {n}"
    if loaded is not None:
        if not allow_empty and written is not None:
            for file, n in written.items():
                assert n == 0 or stored.get(file, 0) > 0, f"{Path(file).name}: every record rejected, yet loaded"
        assert len(loaded.rejects) == len(rejects)
        assert loaded.dataset.counts() == cleaned.without_provenance().counts()
        for name in Dataset.TABLE_NAMES:
            assert "_file" not in loaded.dataset.table(name).columns
        ts = loaded.dataset.interactions["timestamp"].dropna()
        assert ts.between(-9_223_372_036, 9_223_372_036).all()
        r = loaded.dataset.interactions["rating"].dropna()
        assert r.between(0.0, 1.0).all()
        blank = int((loaded.dataset.items["scene"] == "").sum())
        assert blank == int(((frame["action"] == "flagged") & (frame["column"] == "scene")).sum())


@FUZZ
@given(datasets(), st.booleans())
def test_generic_loader_accounts_for_every_record(tabs: list[Table], allow_empty: bool) -> None:
    with folder() as d:
        check_load(d, write(d, tabs), allow_empty)


@FUZZ_BYTES
@given(datasets(), st.data())
def test_generic_loader_on_arbitrary_bytes(tabs: list[Table], data: st.DataObject) -> None:
    """Bytes spliced into a well-formed file (invalid UTF-8, stray quotes, separators): a load or one error line."""
    with folder() as d:
        write(d, tabs)
        target = d / f"{tabs[data.draw(st.integers(0, len(tabs) - 1))].name}"
        path = next(p for p in d.iterdir() if p.name.startswith(target.name + "."))
        body = path.read_bytes()
        at = data.draw(st.integers(0, len(body)))
        cut = data.draw(st.integers(0, 4))
        junk = data.draw(
            st.one_of(st.binary(max_size=8), st.sampled_from([b"\xe9", b"\xff\xfe", b'"', b"\x00", b"\r", b",\t"]))
        )
        path.write_bytes(body[:at] + junk + body[at + cut :])
        check_load(d, None)


@FUZZ_CLI
@given(datasets(), st.booleans())
def test_rebuild_exits_zero_with_the_rows_or_one_error_line(tabs: list[Table], allow_empty: bool) -> None:
    with folder() as d:
        write(d, tabs)
        store = d.parent / "store"
        out, err = io.StringIO(), io.StringIO()
        argv = ["rebuild", str(d), "--store", str(store), "--no-embed", "--quiet"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv + (["--allow-empty"] if allow_empty else []))  # any exception fails the test
        stderr = err.getvalue()
        assert "Traceback" not in stderr
        event(f"rebuild exit {code}")
        if code != 0:
            assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
            return
        assert stderr == ""
        result = load_dataset(d, options=LoadOptions(allow_empty=allow_empty))
        manifest = read_manifest(store)
        assert manifest["rejects"] == len(result.rejects)
        nodes = manifest["counts"]["nodes"]
        ds = result.dataset
        assert nodes.get("Item", 0) == len(ds.items)
        assert manifest["counts"]["edges"].get("INTERACTED", 0) == len(ds.interactions)
        scened = ds.items["scene"][ds.items["scene"] != ""]  # items without a scene are kept, flagged
        assert pd.Index(scened).isin(ds.scenes["id"]).all()
