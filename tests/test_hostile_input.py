"""Hostile or broken input (issue 14): every class gives a reject with its reason or one clear error line, never a
traceback and never a wrong value. Known answers, one test per class; tests/test_fuzz_input.py generalises them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scenerec.cli import main
from scenerec.errors import DataFormatError
from scenerec.kg import read_manifest
from scenerec.loaders import LoadOptions, load_dataset
from scenerec.loaders.cleaning import TIMESTAMP_MAX, TIMESTAMP_MIN, rating_outliers, timestamp_problems

ITEMS = "item_id,scene,title\ni1,books,A\ni2,books,B\ni3,music,C\n"


def dataset(tmp_path: Path, interactions: str, items: str = ITEMS) -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    (d / "items.csv").write_text(items, encoding="utf-8")
    (d / "interactions.csv").write_text(interactions, encoding="utf-8")
    return d


def rebuild_cli(capsys: pytest.CaptureFixture[str], d: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["rebuild", str(d), "--store", str(d.parent / "store"), "--no-embed", "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def reasons(result: object) -> list[tuple[int, str, str]]:
    df = result.rejects.to_frame()  # type: ignore[attr-defined]
    return [(int(r.line), r.column, r.reason) for r in df.itertuples()]


def test_quoted_field_over_the_csv_module_limit_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    title = "x" * 140_000 + ', "quoted", and\nnewline'
    items = 'item_id,scene,title\ni1,books,"' + title.replace('"', '""') + '"\ni2,books,B\n'
    d = dataset(tmp_path, "user_id,item_id\nu1,i1\nu2,i2\n", items)
    res = load_dataset(d)
    assert res.dataset.items.set_index("id").loc["i1", "title"] == title
    assert len(res.rejects) == 0
    code, _, err = rebuild_cli(capsys, d)
    assert code == 0 and err == ""


def test_a_quote_left_open_at_the_end_of_the_file_is_rejected(tmp_path: Path) -> None:
    items = 'item_id,scene,title\ni1,books,A\ni2,books,"B\ni3,music,C\n'  # i3's line is inside i2's open quote
    d = dataset(tmp_path, "user_id,item_id\nu1,i1\n", items)
    res = load_dataset(d)
    assert list(res.dataset.items["id"]) == ["i1"]
    assert reasons(res) == [(3, "", "quoted field not closed before the end of the file (opened on this line)")]


def test_timestamps_outside_the_datetime64_range_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = dataset(
        tmp_path,
        "user_id,item_id,timestamp\n"
        "u1,i1,3000-01-01T00:00:00Z\n"  # line 2: ISO, after 2262
        "u1,i2,inf\n"  # line 3
        "u2,i1,-inf\n"  # line 4
        "u2,i2,1e30\n"  # line 5: milliseconds, still far out
        "u3,i1,1500-06-01\n"  # line 6: before 1677
        "u3,i2,2262-04-11T23:47:16Z\n"  # line 7: the last second accepted
        "u4,i1,nan\n"  # line 8: not a number
        "u4,i2,1000\n",  # line 9
    )
    res = load_dataset(d)
    out_of_range = "timestamp out of range (accepted: 1677-09-21T00:12:44Z .. 2262-04-11T23:47:16Z"
    got = reasons(res)
    assert [(line, col) for line, col, _ in got] == [(8, "timestamp"), (2, "timestamp")] + [
        (n, "timestamp") for n in (3, 4, 5, 6)
    ]
    assert got[0][2] == "unparsable timestamp"
    assert all(r.startswith(out_of_range) for _, _, r in got[1:])
    ts = res.dataset.interactions.set_index(["user", "item"])["timestamp"]
    assert ts.to_dict() == {("u3", "i2"): TIMESTAMP_MAX, ("u4", "i2"): 1000}
    code, _, err = rebuild_cli(capsys, d)
    assert code == 0 and "Traceback" not in err


def test_timestamp_bounds_are_exact() -> None:
    values = pd.Series(
        [str(TIMESTAMP_MIN), str(TIMESTAMP_MAX), str(TIMESTAMP_MAX + 1), "9223372036000", "9223372037000", "1e308"],
        dtype="string",
    )
    ts, unparsable, out_of_range = timestamp_problems(values)
    assert ts.tolist()[:2] == [TIMESTAMP_MIN, TIMESTAMP_MAX]
    assert out_of_range.tolist() == [False, False, True, False, True, True]
    assert ts.tolist()[3] == 9223372036  # milliseconds
    assert not unparsable.any()


def test_item_with_a_blank_scene_is_kept_and_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The generic format allows items without a scene (classify-scenes assigns them): kept, but never silently.
    d = dataset(tmp_path, "user_id,item_id\nu1,i1\nu1,i2\n", "item_id,scene,title\ni1,books,A\ni2,  ,B\n")
    res = load_dataset(d)
    assert res.dataset.items[["id", "scene"]].values.tolist() == [["i1", "books"], ["i2", ""]]
    assert len(res.dataset.interactions) == 2
    df = res.rejects.to_frame()
    assert df[["line", "column", "id", "action", "reason"]].values.tolist() == [
        [
            3,
            "scene",
            "i2",
            "flagged",
            "empty scene: item kept without a scene (no IN_SCENE link) until `scenerec classify-scenes` assigns one",
        ]
    ]
    code, out, _ = rebuild_cli(capsys, d)
    assert code == 0 and "1  flagged   empty scene: item kept without a scene" in out


def test_a_huge_rating_is_rejected_not_rescaling_its_scene(tmp_path: Path) -> None:
    d = dataset(tmp_path, "user_id,item_id,rating\nu1,i1,5\nu1,i2,1\nu2,i1,1e308\nu2,i2,3\nu3,i1,1e400\n")
    res = load_dataset(d)
    assert reasons(res) == [
        (6, "rating", "unparsable rating"),  # 1e400 overflows to inf: not a finite number
        (4, "rating", "rating out of range (accepted: finite, at most 1e+09 in magnitude)"),
    ]
    assert res.dataset.meta["rating_scale"] == {"books": [1.0, 5.0]}
    r = res.dataset.interactions.set_index(["user", "item"])["rating"]
    assert r.to_dict() == {("u1", "i1"): 1.0, ("u1", "i2"): 0.0, ("u2", "i2"): 0.5}


def test_a_rating_outlier_is_rejected_and_the_scale_stays_robust(tmp_path: Path) -> None:
    rows = "".join(f"u{k},i{1 + k % 2},{1 + k % 5}\n" for k in range(10))  # 1..5 stars
    d = dataset(tmp_path, "user_id,item_id,rating\n" + rows + "u99,i1,5000\n")
    res = load_dataset(d)
    got = reasons(res)
    assert len(got) == 1 and got[0][:2] == (12, "rating")
    assert got[0][2].startswith("rating outlier in scene 'books' (accepted there: -39 .. 45")
    assert res.dataset.meta["rating_scale"] == {"books": [1.0, 5.0]}
    assert res.dataset.interactions["rating"].between(0.0, 1.0).all()


def test_rating_outliers_leave_ordinary_scales_alone() -> None:
    stars = pd.Series([5.0] * 97 + [1.0] * 3, dtype="Float64")  # mostly 5 stars: the 1s are no outliers
    assert not rating_outliers(stars)[0].any()
    percent = pd.Series([0.0, 12.5, 50.0, 75.0, 100.0, 99.0], dtype="Float64")
    assert not rating_outliers(percent)[0].any()
    mask, bound = rating_outliers(pd.Series([1.0, 1e6], dtype="Float64"))  # too few ratings to screen
    assert bound is None and not mask.any()


def test_given_scale_clips_and_reports(tmp_path: Path) -> None:
    d = dataset(tmp_path, "user_id,item_id,rating\nu1,i1,5\nu1,i2,7\n")
    res = load_dataset(d, options=LoadOptions(rating_scale=(1.0, 5.0)))
    df = res.rejects.to_frame()
    assert df[["line", "action", "reason"]].values.tolist() == [
        [3, "repaired", "rating outside the given scale [1, 5]: clipped"]
    ]
    assert res.dataset.interactions["rating"].tolist() == [1.0, 1.0]


def test_every_interaction_rejected_fails_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = dataset(tmp_path, "user_id,item_id,rating\nu1,x1,5\nu1,x2,4\nu2,i1,inf\n")
    with pytest.raises(DataFormatError) as info:
        load_dataset(d)
    msg = str(info.value)
    assert msg == (
        f"{d / 'interactions.csv'}: every row was rejected (3 rows dropped; most common: unknown item id (2); "
        "unparsable rating (1)); fix the input, or accept an empty table with allow_empty=True (CLI: --allow-empty)"
    )
    code, out, err = rebuild_cli(capsys, d)
    assert code == 2 and out == ""
    assert err == f"error: {msg}\n"
    assert not (d.parent / "store").exists() or not (d.parent / "store" / "manifest.json").exists()

    res = load_dataset(d, options=LoadOptions(allow_empty=True))
    assert len(res.dataset.interactions) == 0 and len(res.rejects) == 3
    code, out, err = rebuild_cli(capsys, d, "--allow-empty")
    assert code == 0 and err == ""
    assert read_manifest(d.parent / "store")["rejects"] == 3


def test_every_line_rejected_while_reading_fails_too(tmp_path: Path) -> None:
    d = dataset(tmp_path, "user_id,item_id\nu1,i1,extra\nu2\n")
    with pytest.raises(DataFormatError, match=r"interactions.csv: every row was rejected \(2 rows dropped; most "):
        load_dataset(d)


def test_invalid_utf8_names_the_exact_byte_line_and_column(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    body = "item_id,scene,title\n" + "i0,books,abc\n" * 5000 + "i1,books,caf\xe9\n"
    data = body.encode("latin-1")
    (d / "items.csv").write_bytes(data)
    with pytest.raises(DataFormatError) as info:
        load_dataset(d)
    offset = data.index(b"\xe9")
    assert offset == 65_032
    assert str(info.value) == (
        f"{d / 'items.csv'}, line 5002: not utf-8 text (invalid continuation byte: byte 0xe9 at byte offset 65032, "
        "column 13); save the file as utf-8"
    )


def test_repeated_header_column_is_one_error(tmp_path: Path) -> None:
    d = dataset(tmp_path, "user_id,item_id,user_id\nu1,i1,u2\n")
    with pytest.raises(DataFormatError, match=r"interactions.csv, line 1, column 'user_id': column 'user_id' appears"):
        load_dataset(d)


def test_non_finite_alignment_score_is_rejected(tmp_path: Path) -> None:
    d = dataset(tmp_path, "user_id,item_id\nu1,i1\n")
    (d / "alignment.csv").write_text("left_id,right_id,score\ni1,i3,inf\ni2,i3,0.5\n", encoding="utf-8")
    res = load_dataset(d)
    assert reasons(res) == [(2, "score", "unparsable alignment score")]
    assert res.dataset.alignment["score"].tolist() == [0.5]


def test_an_error_quoting_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = dataset(tmp_path, "user_id,item_id\nu1,i1\n", 'item_id,"sce\nne\u2028",title\ni1,books,A\n')
    code, out, err = rebuild_cli(capsys, d)
    assert code == 2 and out == ""
    assert err == (
        f"error: {d / 'items.csv'}, column 'scene': required column is missing (columns present: item_id, sce\\nne, "
        "title)\n"
    )
