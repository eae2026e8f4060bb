"""The graph schema: node labels, relationship types, their properties and Cypher types.

This is the single source of truth that both backends create and that every label or relationship type coming from
data is checked against before it reaches a query (labels cannot be Cypher parameters, so they are validated
instead of being pasted in).

======================  ===============================================================================
Node                    Properties
======================  ===============================================================================
``(:Scene)``            ``id`` (key), ``name``, ``description``
``(:User)``             ``id`` (key), ``attributes`` (JSON object text)
``(:Item)``             ``id`` (key), ``scene``, ``title``, ``description``, ``attributes``,
                        ``scene_confidence`` (set when the scene was assigned by the scene classifier)
``(:Entity)``           ``id`` (key), ``type``, ``name``, ``scene`` (empty when shared by scenes)
======================  ===============================================================================

=============================================  ====================================================
Relationship                                   Properties
=============================================  ====================================================
``(:User)-[:INTERACTED]->(:Item)``             ``timestamp``, ``rating`` (0..1), ``weight``, ``split``
``(:Item)-[:IN_SCENE]->(:Scene)``              (none)
``(:Item|Entity)-[:RELATED]->(:Item|Entity)``  ``relation`` (the KG relation name)
``(a)-[:SAME_AS]->(b)``                        ``score``, ``method`` (User-User, Item/Entity-Item/Entity)
``(:User)-[:RECOMMENDED]->(:Item)``            ``score``, ``rank`` (1 = best), ``model`` (written back by the
                                               recommender, see :data:`DERIVED_RELS`)
=============================================  ====================================================

Written back by a trained recommender (``Engine.write_back``), not part of the dataset: the ``RECOMMENDED``
relationships (top-k items per user and scene) and the :data:`MODEL_EMBEDDING` property of ``(:User)`` and
``(:Item)`` nodes, a float array whose size is only known after training (the text ``embedding`` is another
property). A rebuild starts without them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scenerec.errors import SchemaError


@dataclass(frozen=True)
class NodeType:
    label: str
    kind: str  # id-map kind: scene | user | item | entity
    properties: tuple[tuple[str, str], ...]  # (name, Cypher type); the first is the key "id"

    @property
    def columns(self) -> list[str]:
        return [p for p, _ in self.properties]


@dataclass(frozen=True)
class RelType:
    type: str
    pairs: tuple[tuple[str, str], ...]  # allowed (from label, to label)
    properties: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> list[str]:
        return [p for p, _ in self.properties]


NODES: dict[str, NodeType] = {
    n.label: n
    for n in (
        NodeType("Scene", "scene", (("id", "STRING"), ("name", "STRING"), ("description", "STRING"))),
        NodeType("User", "user", (("id", "STRING"), ("attributes", "STRING"))),
        NodeType(
            "Item",
            "item",
            (
                ("id", "STRING"),
                ("scene", "STRING"),
                ("title", "STRING"),
                ("description", "STRING"),
                ("attributes", "STRING"),
                ("scene_confidence", "DOUBLE"),
            ),
        ),
        NodeType(
            "Entity",
            "entity",
            (("id", "STRING"), ("type", "STRING"), ("name", "STRING"), ("scene", "STRING")),
        ),
    )
}

_KG = ("Item", "Entity")

RELS: dict[str, RelType] = {
    r.type: r
    for r in (
        RelType(
            "INTERACTED",
            (("User", "Item"),),
            (("timestamp", "INT64"), ("rating", "DOUBLE"), ("weight", "DOUBLE"), ("split", "STRING")),
        ),
        RelType("IN_SCENE", (("Item", "Scene"),), ()),
        RelType("RELATED", tuple((a, b) for a in _KG for b in _KG), (("relation", "STRING"),)),
        RelType(
            "SAME_AS",
            (("User", "User"), *((a, b) for a in _KG for b in _KG)),
            (("score", "DOUBLE"), ("method", "STRING")),
        ),
        RelType("RECOMMENDED", (("User", "Item"),), (("score", "DOUBLE"), ("rank", "INT64"), ("model", "STRING"))),
    )
}

#: Relationship types written by the recommender rather than loaded from data: left out of the GNN's edge tables.
DERIVED_RELS = frozenset({"RECOMMENDED"})

#: ``SAME_AS`` methods of the dataset's own alignment (``gold``) and of the known pairs an aligner starts from
#: (``seed``): :meth:`GraphStore.write_alignments` never replaces or deletes them.
PROTECTED_ALIGNMENT_METHODS = frozenset({"gold", "seed"})

#: Node property holding the learnt representation of a trained recommender (``FLOAT[d]``, d known after training).
MODEL_EMBEDDING = "gnn_embedding"

#: Label of each id-map kind.
LABEL_OF_KIND = {n.kind: n.label for n in NODES.values()}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_label(label: str) -> NodeType:
    """The node type named ``label``; :class:`SchemaError` if it is not in the schema."""
    try:
        return NODES[label]
    except (KeyError, TypeError):
        raise SchemaError(f"{label!r} is not a node label of the schema; expected one of {', '.join(NODES)}") from None


def check_rel(rel_type: str, src: str | None = None, dst: str | None = None) -> RelType:
    """The relationship type ``rel_type`` (and that ``src``->``dst`` is an allowed pair); else :class:`SchemaError`."""
    try:
        rel = RELS[rel_type]
    except (KeyError, TypeError):
        raise SchemaError(
            f"{rel_type!r} is not a relationship type of the schema; expected one of {', '.join(RELS)}"
        ) from None
    if src is not None and dst is not None and (src, dst) not in rel.pairs:
        allowed = ", ".join(f"{a}->{b}" for a, b in rel.pairs)
        raise SchemaError(f"[:{rel_type}] cannot connect {src!r} -> {dst!r}; allowed: {allowed}")
    return rel


def check_property(name: str) -> str:
    """A property name that is safe to appear in query text (letters, digits, underscore)."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SchemaError(f"{name!r} is not a valid property name (letters, digits and _ only)")
    return name
