"""The query sandbox (issue 14): ``GraphStore.query``, ``Engine.store.query`` and ``scenerec query`` run only graph
reads by default; files, extensions, other databases and writes are refused before they reach the database.

Every attack runs against the real embedded database (LadybugDB), and the ``unsafe`` opt-in is shown to let the
same statement through (so the refusals are not vacuous). The Neo4j part uses the Bolt stand-in.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenerec.cli import SAMPLE, main
from scenerec.demo import SAMPLE_PRESET, SERVE_QUERY
from scenerec.engine import Engine
from scenerec.errors import StoreError, UnsafeQueryError
from scenerec.kg import current_generation, open_store, rebuild
from scenerec.kg.cypher_guard import NAME_KEYWORDS, READ_KEYWORDS, REFUSED_KEYWORDS, check_read_only
from scenerec.kg.neo4j_store import Neo4jStore

REPO = Path(__file__).resolve().parents[1]
READMES = [REPO / "README.md", REPO / "benchmarks" / "README.md"]
SECRET = "TOP-SECRET-7f3a9c"

#: LadybugDB's keywords (LadybugDB/ladybug, src/antlr4/keywords.txt, plus DECIMAL and SKIP of Cypher.g4).
LADYBUG_KEYWORDS = [
    "ACYCLIC",
    "ANY",
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "ASCENDING",
    "ATTACH",
    "BEGIN",
    "BY",
    "CALL",
    "CASE",
    "CAST",
    "CHECKPOINT",
    "COLUMN",
    "COMMENT",
    "COMMIT",
    "COMMIT_SKIP_CHECKPOINT",
    "CONTAINS",
    "COPY",
    "COUNT",
    "CREATE",
    "CYCLE",
    "DATABASE",
    "DBTYPE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESCENDING",
    "DETACH",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "ENDS",
    "EXISTS",
    "EXPLAIN",
    "EXPORT",
    "EXTENSION",
    "FALSE",
    "FROM",
    "FORCE",
    "GLOB",
    "GRAPH",
    "GROUP",
    "HEADERS",
    "HINT",
    "IMPORT",
    "IF",
    "IN",
    "INCREMENT",
    "INSTALL",
    "IS",
    "JOIN",
    "KEY",
    "LIMIT",
    "LOAD",
    "LOGICAL",
    "MACRO",
    "MATCH",
    "MAXVALUE",
    "MERGE",
    "MINVALUE",
    "MULTI_JOIN",
    "NO",
    "NODE",
    "NOT",
    "NONE",
    "NULL",
    "ON",
    "ONLY",
    "OPTIONAL",
    "OR",
    "ORDER",
    "PRIMARY",
    "PROFILE",
    "PROJECT",
    "READ",
    "REL",
    "RENAME",
    "RETURN",
    "ROLLBACK",
    "ROLLBACK_SKIP_CHECKPOINT",
    "SEQUENCE",
    "SET",
    "SHORTEST",
    "START",
    "STARTS",
    "STRUCT",
    "TABLE",
    "THEN",
    "TO",
    "TRAIL",
    "TRANSACTION",
    "TRUE",
    "TYPE",
    "UNION",
    "UNWIND",
    "UNINSTALL",
    "UPDATE",
    "USE",
    "WHEN",
    "WHERE",
    "WITH",
    "WRITE",
    "WSHORTEST",
    "XOR",
    "SINGLE",
    "YIELD",
    "USER",
    "PASSWORD",
    "ROLE",
    "MAP",
    "DECIMAL",
    "SKIP",
]


# -------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("sandbox") / "store"
    rebuild(SAMPLE, store)
    return store


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text(f"{SECRET}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def evil_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A shared library whose constructor writes a marker file when it is loaded, and that marker's path.

    Without a C compiler an existing library stands in (then only the refusal is checked, not the marker)."""
    folder = tmp_path_factory.mktemp("ext")
    marker = folder / "marker.txt"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:  # pragma: no cover - CI machines have one
        import ladybug

        return next(Path(ladybug.__file__).parent.glob("*.so")), marker
    source = folder / "evil.c"
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void evil(void) {\n"
        f'  FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("pwned", f); fclose(f); }}\n'
        "}\n",
        encoding="utf-8",
    )
    library = folder / "evil.lbug_extension"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library, marker


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


Runner = Callable[[Path, str], Any]


def _via_store(store: Path, cypher: str) -> Any:
    with open_store(store) as graph:
        return graph.query(cypher)


def _via_engine(store: Path, cypher: str) -> Any:
    with Engine.open(store) as engine:
        return engine.store.query(cypher)


ENTRIES: dict[str, Runner] = {"store": _via_store, "engine": _via_engine}


def _refused_everywhere(store: Path, cypher: str, capsys: pytest.CaptureFixture[str], keyword: str) -> None:
    """``cypher`` is refused through GraphStore.query, Engine.open(...).store.query and the CLI."""
    for name, run in ENTRIES.items():
        with pytest.raises(UnsafeQueryError, match=keyword) as info:
            run(store, cypher)
        assert "--unsafe" in str(info.value) and "unsafe=True" in str(info.value), name
    capsys.readouterr()
    code = main(["query", "--store", str(store), cypher])
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: query refused:") and keyword in err and "Traceback" not in err


# -------------------------------------------------------------------- the attack classes
def test_load_extension_of_a_real_library_is_refused(
    built: Path, evil_library: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    library, marker = evil_library
    for cypher in (f"LOAD EXTENSION '{library}'", f'load extension "{library}"'):
        _refused_everywhere(built, cypher, capsys, "LOAD")
    assert not marker.exists()


def test_unsafe_store_does_load_the_library(built: Path, evil_library: tuple[Path, Path]) -> None:
    """The attack is real: with unsafe=True the constructor runs (the database then rejects the library)."""
    library, marker = evil_library
    if not library.name.startswith("evil"):  # pragma: no cover - no compiler
        return
    with open_store(built, unsafe=True) as graph, pytest.raises(StoreError):
        graph.query(f"LOAD EXTENSION '{library}'")
    assert marker.read_text() == "pwned"
    marker.unlink()


def test_load_from_a_file_never_returns_its_content(
    built: Path, secret: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejects = current_generation(built) / "rejects.csv"
    for cypher in (
        f"LOAD FROM '{secret}' RETURN *",
        f"LOAD WITH HEADERS (a STRING) FROM '{secret}' RETURN a",
        f"MATCH (s:Scene) RETURN s.id AS a UNION LOAD FROM '{rejects}' RETURN *",
    ):
        _refused_everywhere(built, cypher, capsys, "LOAD")
    # --unsafe (a trusted user) reads the file
    capsys.readouterr()
    assert main(["query", "--store", str(built), f"LOAD FROM '{secret}' (header=false) RETURN *", "--unsafe"]) == 0
    assert SECRET in capsys.readouterr().out
    with open_store(built, unsafe=True) as graph:
        assert SECRET in graph.query(f"LOAD FROM '{secret}' (header=false) RETURN *").to_string()


def test_load_from_a_python_variable_is_refused(built: Path) -> None:
    """LadybugDB's Python driver resolves ``LOAD FROM name`` from the caller's variables."""
    secret_frame = pd.DataFrame({"password": [SECRET]})
    with open_store(built) as graph:
        for cypher in ("LOAD FROM secret_frame RETURN *", "COPY Scene FROM secret_frame"):
            with pytest.raises(UnsafeQueryError):
                graph.query(cypher)
    with open_store(built, unsafe=True) as graph:  # what the sandbox prevents
        assert graph.query("LOAD FROM secret_frame RETURN *")["password"].tolist() == [SECRET]
    del secret_frame


def test_copy_to_leaves_the_target_untouched(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rejects = current_generation(built) / "rejects.csv"
    before = _digest(rejects)
    for target in (rejects, tmp_path / "out.parquet"):
        _refused_everywhere(built, f"COPY (MATCH (s:Scene) RETURN s.id) TO '{target}'", capsys, "COPY")
    assert _digest(rejects) == before
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    ("cypher", "keyword"),
    [
        ("INSTALL json", "INSTALL"),
        ("INSTALL fts FROM 'http://example.invalid/'", "INSTALL"),
        ("UNINSTALL json", "UNINSTALL"),
        ("UPDATE json", "UPDATE"),
        ("ATTACH '{other}' AS other (dbtype lbug)", "ATTACH"),
        ("DETACH other", "DETACH"),
        ("USE other", "USE"),
        ("EXPORT DATABASE '{folder}'", "EXPORT"),
        ("IMPORT DATABASE '{folder}'", "IMPORT"),
        ("CALL threads=1", "threads"),
        ("CALL home_directory='/tmp'", "home_directory"),
        ("CALL project_graph('g', ['Item'], ['RELATED'])", "project_graph"),
        ("CALL clear_warnings()", "clear_warnings"),
        ("BEGIN TRANSACTION", "BEGIN"),
        ("CHECKPOINT", "CHECKPOINT"),
    ],
)
def test_other_databases_extensions_settings_and_export_are_refused(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], cypher: str, keyword: str
) -> None:
    cypher = cypher.format(other=tmp_path / "other.lbug", folder=tmp_path / "export")
    _refused_everywhere(built, cypher, capsys, keyword)
    assert not (tmp_path / "export").exists() and not (tmp_path / "other.lbug").exists()


@pytest.mark.parametrize(
    ("cypher", "keyword"),
    [
        ("CREATE (:Scene {id: 'x', name: 'y'})", "CREATE"),
        ("MATCH (s:Scene) SET s.name = 'hacked'", "SET"),
        ("MATCH (s:Scene) DETACH DELETE s", "DETACH"),
        ("MATCH ()-[r:IN_SCENE]->() DELETE r", "DELETE"),
        ("MERGE (s:Scene {id: 'x'})", "MERGE"),
        ("MATCH (i:Item) REMOVE i.title", "REMOVE"),
        ("DROP TABLE RECOMMENDED", "DROP"),
        ("ALTER TABLE Item ADD x INT64", "ALTER"),
        ("CREATE MACRO m(x) AS x", "CREATE"),
        ("MATCH (s:Scene) RETURN s.id; MATCH (s:Scene) DELETE s", "more than one statement"),
        ("MATCH (s:Scene) WITH s CALL { MATCH (t:Scene) SET t.name = 'x' } RETURN s", "CALL"),
    ],
)
def test_writes_are_refused(built: Path, capsys: pytest.CaptureFixture[str], cypher: str, keyword: str) -> None:
    with open_store(built) as graph:
        before = graph.counts()
        names = graph.query("MATCH (s:Scene) RETURN s.name AS n ORDER BY n")["n"].tolist()
    _refused_everywhere(built, cypher, capsys, keyword)
    with open_store(built) as graph:
        assert graph.counts() == before
        assert graph.query("MATCH (s:Scene) RETURN s.name AS n ORDER BY n")["n"].tolist() == names


# -------------------------------------------------------------------- bypass tricks
BYPASSES = [
    "load from '{f}' return *",
    "LoAd FrOm '{f}' ReTuRn *",
    "/* a comment */ LOAD FROM '{f}' RETURN *",
    "// a comment\nLOAD FROM '{f}' RETURN *",
    "LOAD/**/FROM '{f}' RETURN *",
    "\n\t LOAD\n\tFROM\t'{f}'\r\nRETURN *",
    "ＬＯＡＤ FROM '{f}' RETURN *",  # fullwidth letters (NFKC: LOAD)
    "ｌｏａｄ ＦＲＯＭ '{f}' RETURN *",
    "LO\u200bAD FROM '{f}' RETURN *",  # zero-width space
    "\u200bLOAD FROM '{f}' RETURN *",
    "\ufeffLOAD FROM '{f}' RETURN *",  # byte-order mark
    "LO\u200dAD FROM '{f}' RETURN *",  # zero-width joiner
    "MATCH (s:Scene) RETURN s.id AS a UNION LOAD FROM '{f}' RETURN *",
    "MATCH (s:Scene) RETURN s.id AS a //\rLOAD FROM '{f}' RETURN *",
    "MATCH (s:Scene) RETURN s.id AS a /* **/ LOAD FROM '{f}' RETURN *",
    "MATCH (s:Scene) RETURN s.id;LOAD FROM '{f}' RETURN *",
    "MATCH (s:Scene) RETURN s.id ; /* */ LOAD FROM '{f}' RETURN *;",
    "RETURN 'x\\' LOAD FROM '{f}' RETURN *",  # an escaped quote does not end the literal early
    'RETURN "a\\q" AS x',  # an escape the database reads differently
    "RETURN 'to_json($p)' AS x",  # the Python driver rewrites to_json($p) even inside a literal
    "EXPLAIN LOAD FROM '{f}' RETURN *",
    "PROFILE COPY Scene FROM '{f}'",
    "MATCH (s:Scene) ſET s.name = 'x'",  # long s (NFKC: s)
    "MATCH (s:Scene) WITH s ＳＥＴ s.name = 'x'",
    "MATCH (s:Scene) RETURN s.id\x00; LOAD FROM '{f}' RETURN *",
]


@pytest.mark.parametrize("template", BYPASSES)
def test_bypass_tricks_are_refused(built: Path, secret: Path, template: str) -> None:
    cypher = template.replace("{f}", str(secret))
    for run in ENTRIES.values():
        with pytest.raises(UnsafeQueryError):
            run(built, cypher)


def test_bypass_tricks_through_the_cli(built: Path, secret: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for template in BYPASSES[:12]:
        capsys.readouterr()
        code = main(["query", "--store", str(built), template.replace("{f}", str(secret))])
        out, err = capsys.readouterr()
        assert code != 0 and SECRET not in out + err and len(err.strip().splitlines()) == 1, template


# -------------------------------------------------------------------- no false positives
def _readme_queries() -> list[str]:
    """Every Cypher read query that the READMEs show (``store.query(...)``, ``scenerec query ...``, cypher blocks)."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in READMES)
    found = [
        m.group(2)
        for m in re.finditer(
            r"""(?:\.query\(\s*|scenerec query [^\n"']*)(["'])((?:MATCH|OPTIONAL|UNWIND|WITH|RETURN|CALL)\b[^\n]*?)\1""",
            text,
        )
    ]
    for block in re.findall(r"```cypher\n(.*?)```", text, flags=re.S):
        found += [line.strip() for line in block.splitlines() if line.strip()]
    return found


def test_readme_and_demo_queries_pass_the_guard() -> None:
    queries = _readme_queries()
    assert len(queries) >= 3, queries
    for cypher in [*queries, SERVE_QUERY, *(q for _, q, _ in SAMPLE_PRESET.queries)]:
        check_read_only(cypher)


GOOD: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("MATCH (s:Scene) RETURN s.id AS id ORDER BY id", {}, ["arts", "office"]),
    (
        "MATCH (s:Scene) WHERE s.name <> 'LOAD FROM x; DROP TABLE Item' RETURN s.id AS id ORDER BY id",
        {},
        ["arts", "office"],
    ),
    (
        "MATCH (s:Scene) WHERE s.id <> \"COPY x TO 'y' // INSTALL\" RETURN s.id AS id ORDER BY id",
        {},
        ["arts", "office"],
    ),
    ("MATCH (s:Scene) // DELETE everything; LOAD EXTENSION 'x'\nRETURN s.id AS id ORDER BY id", {}, ["arts", "office"]),
    ("MATCH (s:Scene) /* CREATE (n); SET s.x = 1 */ RETURN s.id AS id ORDER BY id LIMIT 1", {}, ["arts"]),
    ("MATCH (`load`:Scene) RETURN `load`.id AS `COPY` ORDER BY `COPY` SKIP 1", {}, ["office"]),
    (
        "MATCH (s:Scene) WHERE s.id = $v OR s.name = $w RETURN s.id AS id",
        {"v": "arts", "w": "CREATE (n) SET"},
        ["arts"],
    ),
    ("UNWIND ['LOAD', 'set', 'Drop'] AS x RETURN lower(x) AS x ORDER BY x", {}, ["drop", "load", "set"]),
    ("match (s:Scene) return s.id as id order by id desc limit 1;", {}, ["office"]),
    ("MATCH (i:Item) WITH i.scene AS s, count(*) AS n WHERE n > 1 RETURN s AS id ORDER BY id", {}, ["arts", "office"]),
    ("OPTIONAL MATCH (s:Scene {id: 'none'}) RETURN s.id IS NULL AS id", {}, [True]),
    ("MATCH (s:Scene) RETURN CASE WHEN s.id STARTS WITH 'a' THEN 'A' ELSE 'O' END AS id ORDER BY id", {}, ["A", "O"]),
    ("RETURN 'it\\'s' AS id", {}, ["it's"]),
    (
        "MATCH (u:User)-[:INTERACTED*1..2]->(i:Item) WHERE u.id = $u RETURN count(DISTINCT i) > 0 AS id",
        {"u": "__"},
        [False],
    ),
]


@pytest.mark.parametrize(("cypher", "params", "expected"), GOOD)
def test_read_queries_still_run(built: Path, cypher: str, params: dict[str, Any], expected: list[Any]) -> None:
    with open_store(built) as graph:
        df = graph.query(cypher, **params)
    assert df.iloc[:, 0].tolist() == expected


def test_catalog_procedures_and_the_readme_query_run(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Engine.open(built) as engine:
        tables = set(engine.store.query("CALL show_tables() RETURN name")["name"])
        assert {"Item", "User", "RECOMMENDED"} <= tables
        assert "id" in set(engine.store.query("CALL table_info('Item') RETURN *")["name"])
        user = str(engine.store.query("MATCH (u:User) RETURN u.id AS id ORDER BY id LIMIT 1")["id"].iloc[0])
        rows = engine.store.query(
            "MATCH (u:User)-[r:INTERACTED]->(i:Item) WHERE u.id = $user RETURN i.id, r.weight", user=user
        )
        assert len(rows) > 0
    capsys.readouterr()
    code = main(
        [
            "query",
            "--store",
            str(built),
            "MATCH (i:Item) WHERE i.scene = $s RETURN i.id, i.title LIMIT 5",
            "--param",
            "s=office",
            "--format",
            "json",
        ]
    )
    assert code == 0 and len(capsys.readouterr().out.strip()) > 2


def test_internal_writes_still_work_on_a_sandboxed_store(built: Path, tmp_path: Path) -> None:
    """The library's own writes go through the private path: a writable store that is not unsafe still takes them."""
    store = tmp_path / "copy"
    shutil.copytree(built, store)
    with open_store(store, read_only=False) as graph:  # writable, not unsafe
        assert not graph.unsafe
        users = graph.query("MATCH (u:User) RETURN u.id AS id ORDER BY id LIMIT 1")["id"].tolist()
        items = graph.query("MATCH (i:Item) RETURN i.id AS id ORDER BY id LIMIT 1")["id"].tolist()
        user, item = users[0], items[0]
        frame = pd.DataFrame({"user": [user], "item": [item], "score": [0.5], "rank": [1], "model": ["m"]})
        assert graph.write_recommendations(frame) == 1
        assert graph.write_recommendations(frame, users=[user]) == 1
        assert graph.counts()["edges"]["RECOMMENDED"] == 1
        with pytest.raises(UnsafeQueryError):
            graph.query("MATCH ()-[r:RECOMMENDED]->() DELETE r")


# -------------------------------------------------------------------- the guard itself
def test_every_ladybug_keyword_is_classified() -> None:
    known = READ_KEYWORDS | REFUSED_KEYWORDS | NAME_KEYWORDS
    assert sorted(set(LADYBUG_KEYWORDS) - known) == []
    assert not READ_KEYWORDS & REFUSED_KEYWORDS and not NAME_KEYWORDS & (READ_KEYWORDS | REFUSED_KEYWORDS)


def test_refusal_message_names_the_keyword_and_the_opt_in() -> None:
    with pytest.raises(UnsafeQueryError) as info:
        check_read_only("MATCH (n) /* x */ lOaD FROM 'f' RETURN *")
    msg = str(info.value)
    assert "LOAD" in msg and "--unsafe" in msg and "unsafe=True" in msg and "\n" not in msg
    assert isinstance(info.value, StoreError)


_FORBIDDEN = ["LOAD", "COPY", "CREATE", "DELETE", "SET", "DROP", "INSTALL", "ATTACH", "EXPORT", "MERGE", "CALL"]
_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="'\\\x00", blacklist_categories=("Cs",)), max_size=40
).filter(lambda t: "to_json" not in t.lower())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from([*_FORBIDDEN, ";", "//", "/*", "*/", '"', "`"]), _TEXT), max_size=8))
def test_keywords_inside_string_literals_never_trip_the_guard(parts: list[str]) -> None:
    literal = "'" + " ".join(parts).replace("'", "") + "'"
    check_read_only(f"MATCH (s:Scene) WHERE s.name <> {literal} RETURN s.id, {literal} AS x")


_STATEMENTS = [
    ["LOAD", "FROM", "'/etc/passwd'", "RETURN", "*"],
    ["LOAD", "EXTENSION", "'/tmp/x.so'"],
    ["COPY", "(", "MATCH", "(n)", "RETURN", "n", ")", "TO", "'/tmp/x.csv'"],
    ["MATCH", "(n)", "DETACH", "DELETE", "n"],
    ["MATCH", "(n)", "SET", "n.x", "=", "1"],
    ["INSTALL", "json"],
    ["ATTACH", "'/tmp/db'", "AS", "o"],
    ["MATCH", "(n)", "RETURN", "n", "UNION", "LOAD", "FROM", "'x'", "RETURN", "*"],
    ["CALL", "apoc.load.json", "(", "'file:///etc/passwd'", ")"],
]
_SEPARATORS = st.sampled_from([" ", "\n", "\t", "\r\n", "  ", " /* LOAD */ ", "/**/", " // c\n", "\u3000", "\u00a0"])


def _mangle(word: str, draw: Any) -> str:
    if word.startswith("'") or not word.isalpha():
        return word
    style = draw(st.sampled_from(["upper", "lower", "mixed", "fullwidth", "zero-width"]))
    if style == "lower":
        return word.lower()
    if style == "mixed":
        return "".join(c.lower() if draw(st.booleans()) else c for c in word)
    if style == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in word)
    if style == "zero-width":
        k = draw(st.integers(0, len(word)))
        return word[:k] + draw(st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])) + word[k:]
    return word


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_comments_whitespace_and_case_never_get_a_forbidden_statement_through(data: st.DataObject) -> None:
    words = data.draw(st.sampled_from(_STATEMENTS))
    text = "".join(_mangle(w, data.draw) + data.draw(_SEPARATORS) for w in words)
    with pytest.raises(UnsafeQueryError):
        check_read_only(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_either_accepted_or_refused_cleanly(text: str) -> None:
    with contextlib.suppress(UnsafeQueryError):
        check_read_only(text)


# -------------------------------------------------------------------- Neo4j (the Bolt stand-in)
@pytest.fixture
def neo(neo4j_root: Neo4jStore) -> Iterator[Neo4jStore]:
    s = Neo4jStore(driver=neo4j_root.driver, timeout=10.0, max_batch_bytes=3000)
    s.clear()
    s.create_schema()
    try:
        yield s
    finally:
        s.close()


@pytest.mark.neo4j
def test_neo4j_refuses_load_csv_apoc_and_dbms(neo: Neo4jStore) -> None:
    for cypher, keyword in [
        ("LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line", "LOAD"),
        ("USING PERIODIC COMMIT LOAD CSV FROM 'file:///x' AS l CREATE (:X)", "PERIODIC"),
        ("CALL apoc.load.json('file:///etc/passwd') YIELD value RETURN value", "apoc.load.json"),
        ("RETURN apoc.text.join(['a', 'b'], ',') AS x", "apoc.text.join"),
        ("CALL dbms.procedures()", "dbms.procedures"),
        ("CALL dbms.security.createUser('x', 'y', false)", "dbms.security.createUser"),
        ("CALL db.createLabel('X')", "db.createLabel"),
        ("MATCH (n) WITH n CALL { CREATE (:X) } RETURN n", "CALL"),
        ("CREATE (:User {id: 'x'})", "CREATE"),
        ("SHOW DATABASES", "SHOW"),
    ]:
        with pytest.raises(UnsafeQueryError, match=re.escape(keyword)):
            neo.query(cypher)
    assert neo.counts()["nodes"]["User"] == 0


@pytest.mark.neo4j
def test_neo4j_read_queries_run_in_read_transactions(neo: Neo4jStore) -> None:
    assert neo.query("RETURN 1 AS x")["x"].tolist() == [1]
    assert neo.query("MATCH (n:User) RETURN count(n) AS n")["n"].tolist() == [0]
    assert neo.query("UNWIND [1, 2] AS x RETURN x ORDER BY x DESC")["x"].tolist() == [2, 1]
    assert neo.query("RETURN 'LOAD CSV FROM x' AS s")["s"].tolist() == ["LOAD CSV FROM x"]
    neo.query("CALL db.labels()")
