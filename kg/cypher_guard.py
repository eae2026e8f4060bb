"""The query sandbox: decides, before a statement reaches the database, whether it only reads the graph.

LadybugDB has no switch that turns off extensions or file access (its settings, ``src/main/settings.cpp`` /
``src/include/main/settings.h`` of LadybugDB/ladybug, cover threads, timeouts, checkpoints, optimiser flags, a
home directory and a file search path; read-only mode only blocks database writes: ``LOAD EXTENSION``,
``LOAD FROM <file>``, ``COPY ... TO <file>`` and ``INSTALL`` all still run). So :meth:`GraphStore.query
<scenerec.kg.store.GraphStore.query>` lets a statement through only when this module finds it made of read
clauses, and raises :class:`~scenerec.errors.UnsafeQueryError` otherwise.

How a statement is read (:func:`tokens`): a real tokenizer that follows the LadybugDB grammar
(``src/antlr4/Cypher.g4``) for string literals (backslash escapes, both quotes), backtick-quoted names (a doubled
backtick inside), ``//`` and ``/* */`` comments and whitespace. Where the grammar and Neo4j's could read a comment
differently the statement is refused rather than guessed at. Words are compared to keywords after NFKC
normalisation and upper-casing (fullwidth ``ＬＯＡＤ`` and a lower-case ``load`` are ``LOAD``); invisible format
characters (zero-width spaces and joiners, U+FEFF, ...) and other non-ASCII symbols outside literals and backticks are
refused; so are NUL characters.

What passes (:func:`check_read_only`), an allow-list:

* one statement (a trailing ``;`` is fine), starting with ``MATCH``, ``OPTIONAL MATCH``, ``UNWIND``, ``WITH``,
  ``RETURN`` or ``CALL`` (``EXPLAIN``/``PROFILE`` may come first);
* the keywords that write or reach outside the graph (:data:`REFUSED_KEYWORDS`: ``LOAD``, ``COPY``,
  ``INSTALL``, ``ATTACH``, ``EXPORT``, ``IMPORT``, ``CREATE``, ``SET``, ``DELETE``, ``USE``, ``SHOW``, ...) are
  refused wherever they stand, except as a property key (``n.set``) or a label (``:Load``);
* a word right after a complete expression (a name, literal, ``)``, ``]``, ``}``) must be a read keyword
  (:data:`READ_KEYWORDS`), so a clause that no list here knows is refused too; every keyword of LadybugDB's
  grammar is in one of the lists (the rest, :data:`NAME_KEYWORDS`, may name variables);
* ``CALL`` only of the read-only catalog procedures of :data:`READ_PROCEDURES` (``show_tables``,
  ``table_info``, ``db.labels``, ...); namespaced functions only from :data:`READ_FUNCTION_NAMESPACES` (so no
  ``apoc.*``, ``dbms.*``, ``gds.*``).

Names are never mistaken for keywords when they are quoted: ``'LOAD FROM x'``, ``// DELETE``, `` `CREATE` `` pass.

Two quirks of LadybugDB's Python driver are covered as well: it resolves ``LOAD FROM name`` and ``COPY ... FROM
name`` from the caller's Python variables (``LOAD`` and ``COPY`` are refused), and it rewrites ``to_json($p)``
as text even inside a literal or comment (refused there).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from scenerec.errors import UnsafeQueryError


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: How a trusted caller lifts the sandbox; every refusal says it.
OPT_IN = (
    "only graph reads run by default; a trusted user can run it with `scenerec query --unsafe` or on a store opened "
    "with unsafe=True (open_store(..., unsafe=True), Engine.open(..., unsafe=True))"
)

#: Keywords that read: clause starters, clause parts, operators and expression words of either dialect.
READ_KEYWORDS = _words(
    """
    MATCH OPTIONAL WHERE WITH UNWIND RETURN ORDER BY SKIP LIMIT OFFSET UNION ALL AS DISTINCT ASC ASCENDING DESC
    DESCENDING AND OR XOR NOT IN IS NULL TRUE FALSE CASE WHEN THEN ELSE END STARTS ENDS CONTAINS EXISTS COUNT
    COLLECT ANY NONE SINGLE SHORTEST WSHORTEST TRAIL ACYCLIC YIELD CALL CAST GLOB HINT JOIN MULTI_JOIN USING
    SCAN INDEX EXPLAIN PROFILE
    """
)

#: Keywords that write, reach files, extensions or other databases, or manage the server (LadybugDB's
#: ``src/antlr4/keywords.txt`` and Neo4j 5 Cypher): refused wherever they stand outside a property key or label.
#: The other keywords of either grammar (``TABLE``, ``FROM``, ``TO``, ``TYPE``, ``START``, ...) only make sense
#: inside statements that cannot start a read query or follow an expression, so they may name variables.
REFUSED_KEYWORDS = _words(
    """
    LOAD COPY CREATE MERGE SET DELETE DETACH REMOVE DROP ALTER RENAME FOREACH USE INSTALL UNINSTALL UPDATE
    ATTACH EXPORT IMPORT BEGIN COMMIT COMMIT_SKIP_CHECKPOINT ROLLBACK ROLLBACK_SKIP_CHECKPOINT CHECKPOINT
    TRANSACTION TRANSACTIONS MACRO EXTENSION CSV PERIODIC INSERT SHOW GRANT DENY REVOKE TERMINATE
    """
)

#: The other keywords of LadybugDB's grammar: only meaningful inside statements that the rules above refuse
#: (``CREATE NODE TABLE ... PRIMARY KEY``, ``COPY ... FROM``, ``ATTACH ... (DBTYPE ...)``), so they may be names.
NAME_KEYWORDS = _words(
    """
    ADD COLUMN COMMENT CYCLE DATABASE DBTYPE DECIMAL DEFAULT FORCE FROM GRAPH GROUP HEADERS IF INCREMENT KEY
    LOGICAL MAP MAXVALUE MINVALUE NO NODE ON ONLY PASSWORD PRIMARY PROJECT READ REL ROLE SEQUENCE START STRUCT
    TABLE TO TYPE USER WRITE
    """
)

#: Statements must start with one of these (after an optional EXPLAIN or PROFILE).
_STARTS = frozenset({"MATCH", "OPTIONAL", "UNWIND", "WITH", "RETURN", "CALL"})

#: Read-only catalog procedures (compared lower-case): LadybugDB's, and Neo4j's (FalkorDB has the same names).
READ_PROCEDURES = frozenset(
    {
        "show_tables",
        "table_info",
        "show_connection",
        "db_version",
        "show_functions",
        "show_indexes",
        "db.labels",
        "db.relationshiptypes",
        "db.propertykeys",
        "db.indexes",
        "db.schema.visualization",
        "db.schema.nodetypeproperties",
        "db.schema.reltypeproperties",
    }
)

#: Namespaces of Neo4j functions that compute values only (``point.distance``, ``duration.between``, ...).
READ_FUNCTION_NAMESPACES = frozenset(
    {"point", "date", "datetime", "localdatetime", "time", "localtime", "duration", "vector"}
)

#: Keywords that end an expression (a word after them is a clause keyword, not a name).
_VALUE_KEYWORDS = frozenset({"NULL", "TRUE", "FALSE", "END"})

#: Escapes a string literal may hold (LadybugDB's EscapedChar; Neo4j reads the same ones).
_ESCAPES = {"\\": 0, "'": 0, '"': 0, "b": 0, "f": 0, "n": 0, "r": 0, "t": 0, "x": 2, "u": 4}
_HEX = re.compile(r"[0-9A-Fa-f]+")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?")
_PUNCT = frozenset("()[]{}<>=+-*/%^,.:;|!?&~@#")
#: The Python driver of LadybugDB rewrites ``to_json($name)`` as text, even inside a literal or a comment.
_TO_JSON = re.compile(r"(?i)to_json\s*\(\s*\$")


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is ``word``, ``string``, ``name`` (backtick-quoted), ``number``, ``param`` or
    ``punct``; ``key`` the word as compared with keywords (NFKC, upper case), ``text`` as written."""

    kind: str
    text: str
    key: str
    pos: int


def _refuse(what: str) -> UnsafeQueryError:
    return UnsafeQueryError(f"query refused: {what}; {OPT_IN}")


def _char(c: str) -> str:
    return f"U+{ord(c):04X} {unicodedata.name(c, '')}".strip()


def _is_word_char(c: str) -> bool:
    return c == "_" or c.isalnum()


def tokens(cypher: str) -> list[Token]:
    """The tokens of ``cypher`` (comments and whitespace dropped); raises :class:`UnsafeQueryError` for text that
    the database could read another way (unterminated literals or comments, invalid escapes, invisible characters)."""
    out: list[Token] = []
    s, n, i = cypher, len(cypher), 0
    if "\x00" in s:
        raise _refuse("a NUL character")
    while i < n:
        c = s[i]
        if s.startswith("//", i):
            j = s.find("\n", i)
            end = n if j < 0 else j
            body = s[i:end]
            # LadybugDB ends a line comment only at LF, CR LF or the end: a CR elsewhere is read differently.
            if "\r" in body[:-1]:
                raise _refuse("a carriage return inside a // comment")
            if _TO_JSON.search(body):
                raise _refuse("to_json($...) inside a comment")
            i = end
            continue
        if s.startswith("/*", i):
            j = s.find("*/", i + 2)
            if j < 0:
                raise _refuse("an unterminated /* comment")
            body = s[i + 2 : j]
            # LadybugDB's grammar reads "**/" as a star pair and goes on; Neo4j ends the comment there.
            if body.endswith("*"):
                raise _refuse("a comment ending in '**/' (the database reads it differently)")
            if _TO_JSON.search(body):
                raise _refuse("to_json($...) inside a comment")
            i = j + 2
            continue
        if c in "'\"":
            j = i + 1
            while True:
                if j >= n:
                    raise _refuse("an unterminated string literal")
                ch = s[j]
                if ch == c:
                    break
                if ch == "\\":
                    esc = s[j + 1 : j + 2]
                    digits = _ESCAPES.get(esc.lower())
                    if digits is None:
                        raise _refuse(f"an invalid escape \\{esc} in a string literal")
                    if esc and esc in "xXuU":
                        run = _HEX.match(s, j + 2)
                        have = len(run.group()) if run else 0
                        if have < digits:
                            raise _refuse(f"an invalid escape \\{esc} in a string literal")
                    j += 2
                    continue
                j += 1
            text = s[i : j + 1]
            if _TO_JSON.search(text):
                raise _refuse("to_json($...) inside a string literal")
            out.append(Token("string", text, "", i))
            i = j + 1
            continue
        if c == "`":
            j = i
            while True:  # `a``b` is one name (a doubled backtick inside)
                k = s.find("`", j + 1)
                if k < 0:
                    raise _refuse("an unterminated `name`")
                if s.startswith("``", k):
                    j = k + 1
                    continue
                break
            text = s[i : k + 1]
            if _TO_JSON.search(text):
                raise _refuse("to_json($...) inside a `name`")
            out.append(Token("name", text, "", i))
            i = k + 1
            continue
        if c.isspace():
            i += 1
            continue
        m = _NUMBER.match(s, i) if (c.isascii() and c.isdigit()) or (c == "." and s[i + 1 : i + 2].isdigit()) else None
        if m and not (c == "." and out and out[-1].kind in ("word", "name", "param")):
            out.append(Token("number", m.group(), "", i))
            i = m.end()
            continue
        if c == "$":
            j = i + 1
            if s.startswith("`", j):
                k = s.find("`", j + 1)
                if k < 0:
                    raise _refuse("an unterminated `name`")
                j = k + 1
            else:
                while j < n and _is_word_char(s[j]):
                    j += 1
            if j == i + 1:
                raise _refuse("a '$' without a parameter name")
            out.append(Token("param", s[i:j], "", i))
            i = j
            continue
        if _is_word_char(c):
            j = i
            while j < n and _is_word_char(s[j]):
                j += 1
            word = s[i:j]
            key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).upper()).upper()
            out.append(Token("word", word, key, i))
            i = j
            continue
        if c in _PUNCT:
            out.append(Token("punct", c, c, i))
            i += 1
            continue
        if unicodedata.category(c) == "Cf":
            raise _refuse(f"an invisible character ({_char(c)}) outside a string literal")
        raise _refuse(f"the character {_char(c)} outside a string literal")
    return out


def _names(toks: list[Token]) -> list[bool]:
    """Which words are names by position: a property key or later part of a dotted name (after a ``.`` that
    follows a value), a label or relationship type (after ``:``). Keywords there are plain names."""
    out = [False] * len(toks)
    for k, tok in enumerate(toks):
        if tok.kind != "word" or k == 0:
            continue
        prev = toks[k - 1]
        if (prev.kind == "punct" and prev.text == ":") or (
            prev.kind == "punct" and prev.text == "." and k >= 2 and _ends_value(toks[k - 2], out[k - 2])
        ):
            out[k] = True
    return out


def _ends_value(tok: Token, is_name: bool) -> bool:
    """Whether ``tok`` can end an expression (so that a word after it must be a keyword)."""
    if tok.kind in ("string", "name", "number", "param"):
        return True
    if tok.kind == "punct":
        return tok.text in ")]}"
    return is_name or tok.key in _VALUE_KEYWORDS or tok.key not in READ_KEYWORDS | REFUSED_KEYWORDS


def _dotted(toks: list[Token], k: int) -> tuple[str, int]:
    """The name ``a.b.c`` starting at word ``k`` and the index after it."""
    parts = [toks[k].text]
    k += 1
    while k + 1 < len(toks) and toks[k].text == "." and toks[k + 1].kind in ("word", "name"):
        parts.append(toks[k + 1].text.strip("`"))
        k += 2
    return ".".join(parts), k


def check_read_only(cypher: str) -> None:
    """Raise :class:`~scenerec.errors.UnsafeQueryError` unless ``cypher`` is one statement made of read clauses
    only (see the module documentation); the message names what was refused and how to opt in."""
    toks = tokens(cypher)
    semis = [k for k, t in enumerate(toks) if t.kind == "punct" and t.text == ";"]
    if semis and semis[0] != len(toks) - 1:
        raise _refuse("more than one statement (';')")
    toks = toks[: semis[0]] if semis else toks
    if not toks:
        raise _refuse("an empty statement")
    first = 1 if toks[0].kind == "word" and toks[0].key in ("EXPLAIN", "PROFILE") else 0
    head = toks[first] if first < len(toks) else None
    if head is None or head.kind != "word" or head.key not in _STARTS:
        refused = [t.key for t in toks if t.kind == "word" and t.key in REFUSED_KEYWORDS]
        if refused:
            raise _refuse(f"the keyword {refused[0]}")
        what = head.text if head is not None else "nothing"
        raise _refuse(
            f"a statement starting with {what!r} (read statements start with MATCH, OPTIONAL MATCH, UNWIND, WITH, "
            "RETURN or CALL of a catalog procedure)"
        )
    names = _names(toks)
    k = 0
    while k < len(toks):
        tok = toks[k]
        if tok.kind != "word" or names[k]:
            k += 1
            continue
        prev = toks[k - 1] if k else None
        if tok.key in REFUSED_KEYWORDS:
            raise _refuse(f"the keyword {tok.key}")
        if tok.key == "CALL":
            if k + 1 >= len(toks) or toks[k + 1].kind != "word":
                nxt = toks[k + 1].text if k + 1 < len(toks) else "nothing"
                raise _refuse(f"CALL of {nxt!r} (only catalog procedures such as show_tables() may be called)")
            name, end = _dotted(toks, k + 1)
            if name.lower() not in READ_PROCEDURES:
                raise _refuse(
                    f"the procedure {name} (only read-only catalog procedures such as show_tables, table_info, "
                    "db.labels may be called; settings such as CALL threads=1 are refused too)"
                )
            if end < len(toks) and toks[end].text != "(" and toks[end].key != "YIELD":
                raise _refuse(f"CALL {name} followed by {toks[end].text!r}")
            k = end
            continue
        if tok.key in READ_KEYWORDS:
            k += 1
            continue
        # A name: a variable or a function. Right after a complete expression only a keyword may stand.
        if prev is not None and _ends_value(prev, names[k - 1]):
            raise _refuse(f"the word {tok.text!r} where a read clause keyword belongs")
        name, end = _dotted(toks, k)
        if "." in name and end < len(toks) and toks[end].text == "(":  # a namespaced function
            namespace = name.split(".")[0].lower()
            if namespace not in READ_FUNCTION_NAMESPACES:
                raise _refuse(f"the function {name} (of the {namespace}.* functions and procedures)")
        k += 1
