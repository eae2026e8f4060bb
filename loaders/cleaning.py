"""Cleaning shared by every loader: parse, dedupe, fill, normalise; every dropped or repaired row is reported.

Two entry points:

* :func:`coerce_interactions` turns raw string columns (``timestamp``, ``rating``, ``split``) into typed ones and is
  called by loaders while reading, so that the unparsable rows are reported with their own file and line;
* :func:`clean` runs over a whole raw :class:`Dataset` and returns the cleaned one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scenerec.errors import ConflictingIdError
from scenerec.loaders.rejects import RejectLog
from scenerec.records import PROVENANCE, Dataset, conform, isin

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
    "": "",
}

#: Unix seconds above this are taken to be milliseconds (year 5138 in seconds).
_MS_THRESHOLD = 1e11


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype("string").str.strip() == "")


#: Accepted timestamps, in Unix seconds: pandas' datetime64[ns] range, 1677-09-21T00:12:44Z .. 2262-04-11T23:47:16Z.
#: Numbers of magnitude >= ``_MS_THRESHOLD`` are milliseconds and must fall in the same range once divided by 1000.
TIMESTAMP_MIN = -9_223_372_036
TIMESTAMP_MAX = 9_223_372_036

#: Accepted ratings: finite numbers with ``abs(rating) <= RATING_MAX_ABS``.
RATING_MAX_ABS = 1e9

#: A scene's rating outlier bound (used only when no ``rating_scale`` is given): ratings farther than this many
#: spreads outside the scene's [5th, 95th] percentile range are dropped, the spread being the larger of that range,
#: the median's magnitude and 1 (so 1-5 stars accept at least [-9, 15]). See :func:`rating_outliers`.
RATING_OUTLIER_SPREADS = 10.0
#: Scenes with fewer ratings than this are not screened for outliers (only ``RATING_MAX_ABS`` applies).
RATING_OUTLIER_MIN_COUNT = 5

TIMESTAMP_RANGE_TEXT = (
    "accepted: 1677-09-21T00:12:44Z .. 2262-04-11T23:47:16Z, i.e. Unix seconds "
    f"{TIMESTAMP_MIN} .. {TIMESTAMP_MAX} or the same in milliseconds"
)


def _iso_seconds(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Unix seconds (float) of ISO-8601 texts, NaN where unparsable; also the mask of dates outside the range."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        out_of_range = pd.Series(False, index=text.index)
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
        # One value outside datetime64[ns] stops the vectorised parse: parse one by one to find which.
        values, oob = [], []
        for t in text:
            try:
                values.append(pd.to_datetime(t, errors="coerce", utc=True, format="ISO8601"))
                oob.append(False)
            except (pd.errors.OutOfBoundsDatetime, OverflowError):
                values.append(pd.NaT)
                oob.append(True)
            except ValueError:
                values.append(pd.NaT)
                oob.append(False)
        parsed = pd.Series(pd.to_datetime(pd.Series(values, dtype="object"), utc=True), index=text.index)
        out_of_range = pd.Series(oob, index=text.index)
    secs = pd.Series(np.nan, index=text.index, dtype="float64")
    ok = parsed.notna()
    if ok.any():
        # pandas may keep a coarser unit than nanoseconds for dates outside datetime64[ns]: subtract in that unit.
        epoch = pd.Timestamp(0, tz="UTC").as_unit(parsed.dt.unit)
        secs[ok] = ((parsed[ok] - epoch) // pd.Timedelta(seconds=1)).astype("float64")
    return secs, out_of_range


def timestamp_problems(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Unix seconds (Int64, NA where missing or bad), the unparsable mask and the out-of-range mask.

    Numbers are seconds, or milliseconds from magnitude ``1e11`` up; text is ISO-8601. Accepted range:
    ``TIMESTAMP_MIN`` .. ``TIMESTAMP_MAX`` seconds (pandas' datetime64[ns] range); ``inf`` and ``nan`` are rejected.
    """
    text = values.astype("string").str.strip()
    empty = _blank(text)
    num = pd.to_numeric(text, errors="coerce").astype("float64")
    secs = pd.Series(np.nan, index=values.index, dtype="float64")
    is_num = num.notna() & ~empty
    scaled = num.where(num.abs() < _MS_THRESHOLD, num / 1000.0)
    secs[is_num] = scaled[is_num]
    rest = ~is_num & ~empty
    out_of_range = pd.Series(False, index=values.index)
    if rest.any():
        iso, oob = _iso_seconds(text[rest].astype(str))
        secs[rest] = iso
        out_of_range[rest] = oob
    present = secs.notna()
    out_of_range |= present & ~((secs >= TIMESTAMP_MIN) & (secs <= TIMESTAMP_MAX))  # inf and -inf included
    unparsable = ~empty & ~present & ~out_of_range
    good = present & ~out_of_range
    out = pd.Series(pd.NA, index=values.index, dtype="Int64")
    out[good] = secs[good].round().astype("int64")
    return out, unparsable, out_of_range


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Unix seconds (Int64) from numbers (seconds or milliseconds) or ISO-8601 text; also the bad-value mask
    (unparsable or outside the accepted range, see :func:`timestamp_problems`)."""
    out, unparsable, out_of_range = timestamp_problems(values)
    return out, unparsable | out_of_range


def parse_ratings(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Float ratings from text; also the mask of values that are present but not finite numbers."""
    text = values.astype("string").str.strip()
    empty = _blank(text)
    num = pd.to_numeric(text, errors="coerce").astype("Float64")
    bad = ~empty & (num.isna() | ~np.isfinite(num.fillna(0.0).astype("float64")))
    return num.where(~bad), bad


def coerce_interactions(raw: pd.DataFrame, rejects: RejectLog) -> pd.DataFrame:
    """Typed interactions from raw string columns; unparsable rows are dropped into ``rejects`` with their line.

    ``raw`` has ``user`` and ``item`` and optionally ``timestamp``, ``rating``, ``split`` and ``weight`` as text,
    plus the provenance columns ``_file`` / ``_line``.
    """
    df = raw.copy()
    keep = pd.Series(True, index=df.index)
    for col in ("user", "item"):
        miss = _blank(df[col])
        rejects.add_frame(df[miss & keep], f"empty {col} id", column=col)
        keep &= ~miss
    if "timestamp" in df:
        ts, bad, out_of_range = timestamp_problems(df["timestamp"])
        rejects.add_frame(df[bad & keep], "unparsable timestamp", column="timestamp", id_column="user")
        keep &= ~bad
        rejects.add_frame(
            df[out_of_range & keep],
            f"timestamp out of range ({TIMESTAMP_RANGE_TEXT})",
            column="timestamp",
            id_column="user",
        )
        keep &= ~out_of_range
        df["timestamp"] = ts
    if "rating" in df:
        rating, bad = parse_ratings(df["rating"])
        rejects.add_frame(df[bad & keep], "unparsable rating", column="rating", id_column="user")
        keep &= ~bad
        huge = rating.notna() & (rating.abs() > RATING_MAX_ABS)
        rejects.add_frame(
            df[huge & keep],
            f"rating out of range (accepted: finite, at most {RATING_MAX_ABS:g} in magnitude)",
            column="rating",
            id_column="user",
        )
        keep &= ~huge
        df["rating"] = rating.where(~huge)
    if "weight" in df and df["weight"].dtype == "string":
        w, bad = parse_ratings(df["weight"])
        bad |= w.fillna(1.0) <= 0
        rejects.add_frame(df[bad & keep], "weight is not a positive number", column="weight", id_column="user")
        keep &= ~bad
        huge = w.fillna(1.0) > RATING_MAX_ABS
        rejects.add_frame(
            df[huge & keep],
            f"weight out of range (accepted: at most {RATING_MAX_ABS:g})",
            column="weight",
            id_column="user",
        )
        keep &= ~huge
        df["weight"] = w.fillna(1.0).astype("float64")
    if "split" in df:
        norm = df["split"].astype("string").fillna("").str.strip().str.lower()
        mapped = norm.map(_SPLIT_ALIASES)
        bad = mapped.isna()
        rejects.add_frame(df[bad & keep], "split is not one of train/valid/test", column="split", id_column="user")
        keep &= ~bad
        df["split"] = mapped.fillna("").astype("string")
    df["user"] = df["user"].astype("string").str.strip()
    df["item"] = df["item"].astype("string").str.strip()
    return df[keep]


def _drop_blank_ids(df: pd.DataFrame, col: str, what: str, rejects: RejectLog) -> pd.DataFrame:
    blank = _blank(df[col])
    rejects.add_frame(df[blank], f"empty {what} id", column=col)
    out = df[~blank].copy()
    out[col] = out[col].str.strip()
    return out


def _merge_duplicates(
    df: pd.DataFrame, key: Sequence[str], what: str, rejects: RejectLog, id_column: str
) -> pd.DataFrame:
    """Keep the first row per key; fill its empty fields from later duplicates; report the later rows as merged."""
    dup = df.duplicated(list(key), keep="first")
    if not dup.any():
        return df
    rejects.add_frame(df[dup], f"duplicate {what} row merged into the first one", action="merged", id_column=id_column)
    value_cols = [c for c in df.columns if c not in key and c not in PROVENANCE]
    text_cols = [c for c in value_cols if df[c].dtype == "string"]
    first = df[~dup].copy()
    if text_cols:
        # First non-empty value per key for text columns (a later row may carry a missing title, say).
        nonempty = df[list(key) + text_cols].copy()
        for c in text_cols:
            nonempty[c] = nonempty[c].where(nonempty[c].str.len() > 0)
        filled = nonempty.groupby(list(key), sort=False, dropna=False)[text_cols].first()
        merged = first[list(key)].merge(filled.reset_index(), on=list(key), how="left")
        for c in text_cols:
            first[c] = merged[c].fillna("").astype("string").to_numpy()
    return first


def _attributes_text(attr_json: pd.Series) -> pd.Series:
    def one(s: str) -> str:
        if not s:
            return ""
        try:
            d = json.loads(s)
        except json.JSONDecodeError:
            return ""
        return "; ".join(f"{k}: {v}" for k, v in d.items() if v not in ("", None))

    return attr_json.map(one).astype("string")


def _fill_item_text(items: pd.DataFrame, rejects: RejectLog) -> pd.DataFrame:
    items = items.copy()
    attr_text = _attributes_text(items["attributes"])
    no_title = (items["title"].str.len() == 0) & (attr_text.str.len() > 0)
    rejects.add_frame(
        items[no_title],
        "empty title filled from attributes",
        action="repaired",
        column="title",
        id_column="id",
    )
    items.loc[no_title, "title"] = attr_text[no_title]
    no_desc = (items["description"].str.len() == 0) & (attr_text.str.len() > 0) & ~no_title
    rejects.add_frame(
        items[no_desc],
        "empty description filled from attributes",
        action="repaired",
        column="description",
        id_column="id",
    )
    items.loc[no_desc, "description"] = attr_text[no_desc]
    return items


def _check_item_scenes(items: pd.DataFrame) -> None:
    pairs = items.drop_duplicates(["id", "scene"])
    dup = pairs[pairs["id"].duplicated(keep=False)]
    if dup.empty:
        return
    ident = dup["id"].iloc[0]
    rows = dup[dup["id"] == ident].head(2)
    where = []
    for r in rows.to_dict("records"):
        line = r.get("_line")
        at = f" line {line}" if line is not None and not pd.isna(line) else ""
        where.append(f"scene {r['scene']!r} ({Path(str(r.get('_file') or 'items')).name}{at})")
    first = rows.iloc[0]
    raise ConflictingIdError(
        f"item id {ident!r} is declared in two scenes: {where[0]} and {where[1]}; an item belongs to one scene "
        "(give the copies distinct ids and link them in the alignment table)",
        file=str(first.get("_file", "items") or "items"),
        line=None if pd.isna(first.get("_line", pd.NA)) else int(first["_line"]),
    )


def rating_outliers(ratings: pd.Series) -> tuple[pd.Series, tuple[float, float] | None]:
    """Mask of the ratings of one scene that lie far outside the others, and the accepted (low, high) bound.

    With p5 / p95 the scene's 5th / 95th percentiles (the lower interpolation: one extreme value does not move them)
    and ``spread = max(p95 - p5, |median|, 1)``, ratings outside ``[p5 - k * spread, p95 + k * spread]``
    (``k = RATING_OUTLIER_SPREADS``) are outliers: kept, they would squash the scene's min/max scale. Scenes with
    fewer than ``RATING_OUTLIER_MIN_COUNT`` ratings are not screened (bound ``None``).
    """
    r = ratings.dropna().astype("float64")
    none = pd.Series(False, index=ratings.index)
    if len(r) < RATING_OUTLIER_MIN_COUNT:
        return none, None
    p5 = float(r.quantile(0.05, interpolation="lower"))
    p95 = float(r.quantile(0.95, interpolation="lower"))
    med = float(r.quantile(0.5, interpolation="lower"))
    spread = max(p95 - p5, abs(med), 1.0)
    lo, hi = p5 - RATING_OUTLIER_SPREADS * spread, p95 + RATING_OUTLIER_SPREADS * spread
    values = ratings.astype("Float64")
    return (values.notna() & ((values < lo) | (values > hi))).fillna(False).astype(bool), (lo, hi)


def _normalise_ratings(
    inter: pd.DataFrame, item_scene: pd.Series, scale: tuple[float, float] | None, rejects: RejectLog
) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """Min-max ratings to [0, 1] per scene (or with the given scale); returns the rows kept and the scale used per
    scene (``meta['rating_scale']``: scene -> [low, high], the raw ratings that map to 0 and 1).

    Without a given scale, a scene's outliers (:func:`rating_outliers`) are dropped into ``rejects`` before its
    min/max is taken; with one, ratings outside it are clipped to [0, 1] and reported as repaired.
    """
    rating = inter["rating"].astype("Float64")
    scenes = inter["item"].map(item_scene).fillna("")
    out = pd.Series(pd.NA, index=inter.index, dtype="Float64")
    keep = pd.Series(True, index=inter.index)
    used: dict[str, list[float]] = {}
    for scene, idx in scenes.groupby(scenes).groups.items():
        r = rating.loc[idx]
        if r.notna().sum() == 0:
            continue
        if scale:
            lo, hi = scale
        else:
            outlier, bound = rating_outliers(r)
            if outlier.any() and bound is not None:
                rows = outlier[outlier].index
                rejects.add_frame(
                    inter.loc[rows],
                    f"rating outlier in scene {str(scene)!r} (accepted there: {bound[0]:g} .. {bound[1]:g}, "
                    f"{RATING_OUTLIER_SPREADS:g} spreads around its 5-95th percentiles)",
                    column="rating",
                    id_column="user",
                )
                keep.loc[rows] = False
                r = r[~outlier]
            lo, hi = float(r.min()), float(r.max())
        used[str(scene)] = [lo, hi]
        norm, outside = scale_ratings(r, lo, hi)
        if outside.any():
            rejects.add_frame(
                inter.loc[outside[outside].index],
                f"rating outside the given scale [{lo:g}, {hi:g}]: clipped",
                action="repaired",
                column="rating",
                id_column="user",
            )
        out.loc[r.index] = norm
    result = inter.assign(rating=out)[keep]
    return result, used


def scale_ratings(r: pd.Series, lo: float, hi: float) -> tuple[pd.Series, pd.Series]:
    """``r`` mapped to [0, 1] by the scale ``[lo, hi]`` (all 1 when ``lo == hi``) and clipped, and the mask of the
    ratings that lay outside the scale (to report as clipped)."""
    norm = ((r - lo) / (hi - lo)) if hi > lo else r * 0.0 + 1.0
    outside = norm.notna() & ((norm < 0) | (norm > 1))
    return norm.clip(0.0, 1.0), outside


def clean(raw: Dataset, rejects: RejectLog, options: object | None = None, *, keep_provenance: bool = False) -> Dataset:
    """Return the cleaned dataset. See the README's "Cleaning" section for the rules.

    * items, entities, users, scenes: blank ids dropped; repeated ids merged (first row wins, blanks filled from
      later rows); an item id in two scenes raises :class:`ConflictingIdError`; an id used both as item and entity
      raises too; missing item text is filled from the attributes;
    * interactions: unknown item (or, when a users table was given, unknown user) dropped; optional
      ``min_rating`` filter; repeats of (user, item, split) merged into one row whose ``weight`` is their summed
      weight, latest timestamp and mean rating; ratings normalised to [0, 1] per scene;
    * triples: blank fields dropped, exact repeats merged; head/tail ids that are neither item nor entity become
      entities (counted in ``meta['inferred_entities']``);
    * alignment: unknown ids dropped, repeats merged.

    ``keep_provenance`` keeps the ``_file`` / ``_line`` columns of the rows that carry them (for the
    every-row-rejected check of :func:`scenerec.loaders.load_dataset`).
    """
    from scenerec.loaders.base import LoadOptions

    opts = options if isinstance(options, LoadOptions) else LoadOptions()
    meta = dict(raw.meta)

    items = _drop_blank_ids(raw.items, "id", "item", rejects)
    items["scene"] = items["scene"].astype("string").fillna("").str.strip()
    _check_item_scenes(items)
    items = _merge_duplicates(items, ["id"], "item", rejects, "id")
    # after merging: one flag per stored item, and a repeat that names the scene fills the blank
    rejects.add_frame(
        items[items["scene"] == ""],
        "empty scene: item kept without a scene (no IN_SCENE link) until `scenerec classify-scenes` assigns one",
        action="flagged",
        column="scene",
        id_column="id",
    )
    items = _fill_item_text(items, rejects)
    item_ids = pd.Index(items["id"])

    entities = _drop_blank_ids(raw.entities, "id", "entity", rejects)
    entities = _merge_duplicates(entities, ["id"], "entity", rejects, "id")
    clash = entities[isin(entities["id"], item_ids)]
    if len(clash):
        r = clash.iloc[0]
        raise ConflictingIdError(
            f"id {r['id']!r} is used both as an item and as an entity; ids must be unique across the two",
            file=str(r.get("_file", "entities") or "entities"),
            line=None if pd.isna(r.get("_line", pd.NA)) else int(r["_line"]),
        )

    users = _drop_blank_ids(raw.users, "id", "user", rejects)
    users = _merge_duplicates(users, ["id"], "user", rejects, "id")
    have_user_table = len(users) > 0

    # ---- interactions
    inter = raw.interactions
    unknown_item = ~isin(inter["item"], item_ids)
    rejects.add_frame(inter[unknown_item], "unknown item id", column="item", id_column="item")
    inter = inter[~unknown_item]
    if have_user_table:
        unknown_user = ~isin(inter["user"], pd.Index(users["id"]))
        rejects.add_frame(
            inter[unknown_user], "unknown user id (not in the users table)", column="user", id_column="user"
        )
        inter = inter[~unknown_user]
    if opts.min_rating is not None:
        low = inter["rating"].notna() & (inter["rating"] < opts.min_rating)
        rejects.add_frame(inter[low], f"rating below min_rating={opts.min_rating}", column="rating", id_column="user")
        inter = inter[~low]
    key = ["user", "item", "split"]
    dup = inter.duplicated(key, keep="first")
    if dup.any():
        rejects.add_frame(
            inter[dup],
            "repeated interaction merged (weight counts repeats)",
            action="merged",
            id_column="user",
        )
        firsts = inter[~dup]
        agg = inter.groupby(key, sort=False).agg(
            weight=("weight", "sum"), timestamp=("timestamp", "max"), rating=("rating", "mean")
        )
        merged = firsts[key + [c for c in PROVENANCE if c in firsts]].merge(agg.reset_index(), on=key, how="left")
        inter = merged
    item_scene = pd.Series(items["scene"].to_numpy(), index=items["id"].to_numpy())
    inter = inter.copy()
    inter, meta["rating_scale"] = _normalise_ratings(inter, item_scene, opts.rating_scale, rejects)

    if not have_user_table:
        users = pd.DataFrame({"id": pd.unique(inter["user"])})

    # ---- triples
    tri = raw.triples
    blank = _blank(tri["head"]) | _blank(tri["relation"]) | _blank(tri["tail"])
    rejects.add_frame(tri[blank], "triple with an empty head, relation or tail", id_column="head")
    tri = tri[~blank].copy()
    for c in ("head", "relation", "tail"):
        tri[c] = tri[c].str.strip()
    dup = tri.duplicated(["head", "relation", "tail"])
    rejects.add_frame(tri[dup], "repeated triple merged", action="merged", id_column="head")
    tri = tri[~dup]
    known = pd.Index(items["id"]).append(pd.Index(entities["id"]))
    ends = pd.unique(pd.concat([tri["head"], tri["tail"]], ignore_index=True))
    inferred = pd.Index(ends).difference(known)
    meta["inferred_entities"] = len(inferred)
    if len(inferred):
        entities = pd.concat([entities, pd.DataFrame({"id": pd.array(inferred, dtype="string")})], ignore_index=True)
        entities = conform("entities", entities)

    # ---- alignment
    ali = raw.alignment
    all_ids = known.append(pd.Index(inferred)).append(pd.Index(users["id"].astype("string")))
    bad = ~isin(ali["left"], all_ids) | ~isin(ali["right"], all_ids)
    rejects.add_frame(ali[bad], "alignment references an unknown id", id_column="left")
    ali = ali[~bad]
    dup = ali.duplicated(["left", "right"])
    rejects.add_frame(ali[dup], "repeated alignment pair merged", action="merged", id_column="left")
    ali = ali[~dup]

    # ---- scenes
    scenes = _drop_blank_ids(raw.scenes, "id", "scene", rejects)
    scenes = _merge_duplicates(scenes, ["id"], "scene", rejects, "id")
    used = [s for s in pd.unique(pd.concat([items["scene"], entities["scene"]])) if s]
    missing = [s for s in used if s not in set(scenes["id"])]
    if missing:
        scenes = pd.concat([scenes, pd.DataFrame({"id": missing, "name": missing})], ignore_index=True)
    scenes = conform("scenes", scenes)
    scenes.loc[scenes["name"] == "", "name"] = scenes["id"]

    out = Dataset(
        raw.name,
        scenes=scenes,
        users=users,
        items=items,
        entities=entities,
        interactions=inter,
        triples=tri,
        alignment=ali,
        meta=meta,
    )
    return out if keep_provenance else out.without_provenance()
