"""Explanations of recommendations: the graph paths from a user to an item, ranked by the trained model.

The paths come from the store (:meth:`GraphStore.explanation_paths <scenerec.kg.GraphStore.explanation_paths>`,
parameterised Cypher); this module scores them in the model's item space and keeps the best.

A path's score is

    score = mean_{x in I} cos(v_x, v_t) * prod_{h in S} s_h

where ``t`` is the target item, ``I`` the items on the path other than ``t`` (the user's own item, and for
``same_as_entity`` the item it is linked to), ``v`` the item vectors (the trained model's item representations,
:meth:`Engine.item_vectors <scenerec.engine.Engine.item_vectors>`; a zero vector has cosine 0), ``S`` the
``SAME_AS`` hops of the path and ``s_h`` their ``score`` property (1 when missing). Paths of every kind therefore
compare on one scale: how close the model puts the items the path goes through to the recommended item, discounted
by the confidence of the alignment links it crosses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scenerec.ids import IdMap
from scenerec.kg import GraphStore
from scenerec.ranking import check_k

#: Paths of each kind the store returns at most, before the ranking.
CANDIDATES_PER_KIND = 200


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (n, d) scaled to unit length, as float64; rows of zeros stay zero."""
    arr = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=1)
    return arr / np.where(norms > 0, norms, 1.0)[:, None]


def path_score(path: dict[str, Any], unit: np.ndarray, idmap: IdMap) -> float:
    """The score of one path (see the module docstring): ``unit`` holds the unit item vectors (n_items, d) in
    ``idmap`` order; the path's last node is the target item."""
    nodes = path["nodes"]
    target = unit[idmap.index("item", nodes[-1]["id"])]
    items = [n["id"] for n in nodes[:-1] if n["label"] == "Item"]
    if not items:
        return 0.0
    cosines = unit[idmap.indices("item", items)] @ target
    weight = 1.0
    for rel, score in zip(path["relations"], path.get("hop_scores") or [None] * len(path["relations"]), strict=True):
        if rel == "SAME_AS" and score is not None:
            weight *= float(score)
    return float(np.mean(cosines)) * weight


def rank_paths(paths: list[dict[str, Any]], vectors: np.ndarray, idmap: IdMap, max_paths: int) -> list[dict[str, Any]]:
    """The ``max_paths`` best of ``paths`` (as :meth:`GraphStore.explanation_paths` returns them) by
    :func:`path_score`, identical paths counted once; ties go to the kind, then the node ids, in ascending order.
    Paths that differ only in the other users they pass through (``co_interaction``: the same item of the user,
    the same target) are one explanation: the one with the smallest node ids stands for them, and ``support``
    counts them (among the candidates fetched).

    Returns ``{"kind", "score", "nodes", "relations", "support"}`` per path, best first.
    """
    check_k(max_paths, "max_paths")
    unit = unit_rows(vectors)
    seen: set[tuple[Any, ...]] = set()
    groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
    for path in paths:
        key = (
            path["kind"],
            tuple((n["label"], n["id"]) for n in path["nodes"]),
            tuple(path["relations"]),
        )
        if key in seen:
            continue
        seen.add(key)
        # paths that differ only in the other users they pass through (shared users) are one explanation
        shape = (
            path["kind"],
            tuple((n["label"], n["id"]) for i, n in enumerate(path["nodes"]) if i == 0 or n["label"] != "User"),
            tuple(path["relations"]),
        )
        groups.setdefault(shape, []).append((key, path))
    scored = []
    for members in groups.values():
        key, path = min(members, key=lambda m: (m[0][1], m[0][2]))
        scored.append((path_score(path, unit, idmap), key, path, len(members)))
    scored.sort(key=lambda entry: (-entry[0], entry[1][0], entry[1][1], entry[1][2]))
    return [
        {
            "kind": path["kind"],
            "score": score,
            "nodes": [dict(n) for n in path["nodes"]],
            "relations": list(path["relations"]),
            "support": support,
        }
        for score, _, path, support in scored[:max_paths]
    ]


def explain(
    store: GraphStore,
    idmap: IdMap,
    vectors: np.ndarray,
    user_id: str,
    item_id: str,
    max_paths: int = 3,
    limit: int = CANDIDATES_PER_KIND,
) -> list[dict[str, Any]]:
    """The ``max_paths`` best graph paths from ``user_id`` to ``item_id`` (:func:`rank_paths` over at most ``limit``
    candidate paths of each kind from ``store``); ``vectors`` (n_items, d) are the item vectors in ``idmap`` order.

    An empty list when the graph holds no such path; :class:`~scenerec.errors.UnknownIdError` for an unknown user or
    item.
    """
    check_k(max_paths, "max_paths")
    return rank_paths(store.explanation_paths(user_id, item_id, limit=limit), vectors, idmap, max_paths)
