"""The rejects report: every dropped, repaired or merged input row, with its file, line and reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

#: What happened to a rejected row: dropped, repaired (a value changed or filled), merged into an earlier row, or
#: flagged (kept unchanged but reported, e.g. an item without a scene, left for ``classify-scenes``).
ACTIONS = ("dropped", "repaired", "merged", "flagged")


@dataclass(frozen=True, slots=True)
class Reject:
    file: str
    line: int | None
    reason: str
    action: str = "dropped"
    column: str = ""
    id: str = ""


class RejectLog:
    """Collects :class:`Reject` rows. Nothing a loader or the cleaner drops or changes escapes it."""

    COLUMNS = ("file", "line", "column", "id", "action", "reason")

    def __init__(self) -> None:
        self._rows: list[Reject] = []
        self._frames: list[pd.DataFrame] = []

    def add(
        self,
        file: str,
        line: int | None,
        reason: str,
        *,
        action: str = "dropped",
        column: str = "",
        ident: str = "",
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        self._rows.append(Reject(str(file), line, reason, action, column, str(ident)))

    def add_frame(
        self,
        rows: pd.DataFrame,
        reason: str,
        *,
        action: str = "dropped",
        column: str = "",
        id_column: str = "",
    ) -> None:
        """Add many rows at once. ``rows`` must carry the provenance columns ``_file`` and ``_line``."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        if rows.empty:
            return
        ident = rows[id_column].astype("string").fillna("") if id_column else ""
        frame = pd.DataFrame(
            {
                "file": rows["_file"].astype("string").fillna("") if "_file" in rows else "",
                "line": rows["_line"].astype("Int64") if "_line" in rows else pd.NA,
                "column": column,
                "id": ident,
                "action": action,
                "reason": reason,
            }
        )
        self._frames.append(frame)

    def extend(self, other: RejectLog) -> None:
        self._rows.extend(other._rows)
        self._frames.extend(other._frames)

    def to_frame(self) -> pd.DataFrame:
        frames = [*self._frames]
        if self._rows:
            frames.append(pd.DataFrame([asdict(r) for r in self._rows]).rename(columns={"id": "id"}))
        if not frames:
            return pd.DataFrame({c: pd.Series([], dtype="string") for c in self.COLUMNS})
        df = pd.concat([f[list(self.COLUMNS)] for f in frames], ignore_index=True)
        df["line"] = df["line"].astype("Int64")
        return df

    def __len__(self) -> int:
        return len(self._rows) + sum(len(f) for f in self._frames)

    def counts(self) -> Counter[tuple[str, str]]:
        """(action, reason) -> number of rows."""
        df = self.to_frame()
        return Counter({(a, r): int(n) for (a, r), n in df.groupby(["action", "reason"]).size().items()})

    def write_csv(self, path: str | Path) -> Path:
        p = Path(path)
        self.to_frame().to_csv(p, index=False)
        return p

    def summary_lines(self) -> list[str]:
        return [f"{n:>8,}  {action:<8}  {reason}" for (action, reason), n in sorted(self.counts().items())]
