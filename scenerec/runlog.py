"""The run log of a store generation: one JSON object per line in ``<live generation>/runs.jsonl``.

:class:`scenerec.engine.Engine` appends a ``"fit"`` record after every training run and an ``"evaluate"`` record
after every evaluation; :mod:`scenerec.report` reads them back. The log belongs to the generation its runs were
made on, so a rebuild starts a new, empty one.

>>> log = RunLog.for_store("stores/shop")                    # doctest: +SKIP
>>> log.append("evaluate", {"model": "pop", "scene": "office", "metrics": {"ndcg@10": 0.05}})
>>> log.read("evaluate")[-1]["metrics"]["ndcg@10"]
0.05
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scenerec.errors import DataFormatError
from scenerec.kg import current_generation

#: File name of the run log inside a store generation.
RUNS_FILE = "runs.jsonl"


def json_safe(value: Any) -> Any:
    """``value`` made of JSON types only: NaN and infinities become ``None``, numpy scalars and arrays Python
    numbers and lists, tuples and sets lists, mapping keys strings, anything else its ``str``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


class RunLog:
    """Append-only JSON-lines log at ``path``: every record has ``kind`` (``"fit"``, ``"evaluate"``, ...) and
    ``time`` (UTC, ISO 8601) besides its own fields. Lines are written whole and flushed, in the order of the runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_store(cls, store: str | Path) -> RunLog:
        """The run log of the live generation of the store folder ``store``."""
        return cls(current_generation(store) / RUNS_FILE)

    def append(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``record`` with its ``kind`` and the current time as one line; returns what was written."""
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError("a run record needs a kind, e.g. 'fit' or 'evaluate'")
        line: dict[str, Any] = json_safe(record)
        line = {"kind": kind, "time": datetime.now(UTC).isoformat(timespec="milliseconds"), **line}
        line["kind"] = kind
        text = json.dumps(line, ensure_ascii=False, allow_nan=False)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
        return line

    def read(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The records in the order they were written (only those of ``kind`` when given); none when the log does
        not exist yet. A line that is not a JSON object raises :class:`DataFormatError` naming file and line."""
        if not self.path.is_file():
            return []
        out: list[dict[str, Any]] = []
        with self.path.open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(
                        f"not a JSON run record ({exc.msg} at column {exc.colno}); fix or delete the line",
                        file=self.path,
                        line=number,
                    ) from None
                if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
                    raise DataFormatError(
                        "a run record must be a JSON object with a string 'kind'; fix or delete the line",
                        file=self.path,
                        line=number,
                    )
                if kind is None or record["kind"] == kind:
                    out.append(record)
        return out
