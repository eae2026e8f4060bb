"""Entity alignment between two scenes of an engine's store: the :class:`Aligner` service (``engine.aligner``).

The store is read here (:meth:`GraphStore.named_nodes <scenerec.kg.GraphStore.named_nodes>`, the edge index, the
text features) and the found pairs written back; the arrays and the alignment itself are
:mod:`scenerec.transfer.align`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scenerec.errors import ConfigError

if TYPE_CHECKING:
    from scenerec.engine import Engine

__all__ = ["Aligner", "SceneAlignment"]

#: The node kinds an alignment compares, numbered in this order (items first, then entities).
KINDS = ("item", "entity")


@dataclass
class SceneAlignment:
    """Result of :meth:`Aligner.align`: ``summary`` (JSON-serialisable: counts, metrics on the held-out gold pairs,
    seconds), and in node ids ``pairs`` (accepted pairs, the seeds first with method ``seed``), ``review`` (mutual
    nearest pairs below the threshold, best first), ``seeds`` and ``held_out`` (the gold pairs given to the aligner
    and those it was measured on). Pair frames have ``left``, ``right``, ``kind_left``, ``kind_right``,
    ``name_left``, ``name_right``, ``score``, ``csls``, ``method``. ``result["hits@1"]`` reads the summary."""

    summary: dict[str, Any]
    pairs: pd.DataFrame
    review: pd.DataFrame
    seeds: pd.DataFrame
    held_out: pd.DataFrame

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def __contains__(self, key: object) -> bool:
        return key in self.summary


class Aligner:
    """Aligns the nodes of two scenes of an engine's store and writes the found ``SAME_AS`` pairs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def align(
        self,
        left: str,
        right: str,
        *,
        seed_fraction: float = 0.3,
        seed: int = 0,
        threshold: float = 0.5,
        method: str = "gcn",
        write: bool = True,
    ) -> SceneAlignment:
        """Align the nodes of scene ``left`` with those of scene ``right`` (:func:`scenerec.transfer.align.align`).

        The nodes of a scene are its Entity nodes (``scene`` property) and its Item nodes; their features are the
        stored text embeddings (zero for nodes without text); the structure is every ``RELATED`` edge (never
        ``SAME_AS``). The stored ``SAME_AS`` pairs of method ``gold`` between the two scenes are split at random
        (``numpy.random.default_rng(seed)``): ``seed_fraction`` of them are the aligner's seeds, the rest are held
        out and measured (``hits@1``, ``hits@10``, ``mrr``, ``precision``, ``recall``; absent without gold). With
        ``write`` (a writable store: ``Engine.open(path, read_only=False)``) the accepted non-seed pairs replace the
        earlier ``SAME_AS`` relationships of ``method`` between the two scenes; gold ones are never touched.

        Raises :class:`UnknownIdError` for an unknown scene, :class:`ConfigError` for a scene without nodes or a
        store without text embeddings (or read-only with ``write``), ``ValueError`` for bad arguments.
        """
        from scenerec.transfer.align import (
            METHODS,
            AlignConfig,
            joint_edges,
            joint_features,
            orient_pairs,
            shared_users,
            split_pairs,
        )
        from scenerec.transfer.align import align as run_align

        t0 = time.perf_counter()
        engine = self._engine
        for scene in (left, right):
            engine._check_scene(scene)
        if left == right:
            raise ValueError(f"left and right must be two different scenes, not {left!r} twice")
        if not isinstance(seed_fraction, (int, float)) or not 0.0 <= seed_fraction < 1.0:
            raise ValueError(f"seed_fraction must be in [0, 1), not {seed_fraction!r}")
        if method not in METHODS:
            raise ValueError(f"unknown alignment method {method!r}; choose one of: {', '.join(METHODS)}")
        if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], not {threshold!r}")
        if write:
            engine._require_writable("write the alignment, or pass write=False")
        sizes = [engine.idmap.size(kind) for kind in KINDS]
        dims = {kind: engine.features[kind].shape[1] for kind in KINDS if kind in engine.features}
        if not dims:
            raise ConfigError(f"{engine.path}: the store has no text embeddings to align with; rebuild it with them")
        if len(set(dims.values())) > 1:
            raise ConfigError(f"{engine.path}: item and entity embeddings differ in size ({dims}); rebuild the store")
        x = joint_features([engine.features.get(kind) for kind in KINDS], sizes)

        index = engine._edge_index()
        nodes = engine.store.named_nodes(engine.idmap)  # node index -> kind, id, name, scene
        node_kind, node_id, node_name = (nodes[c].to_numpy(dtype=object) for c in ("kind", "id", "name"))
        node_scene = nodes["scene"].to_numpy(dtype=object)
        left_nodes = np.flatnonzero(node_scene == left)
        right_nodes = np.flatnonzero(node_scene == right)
        for scene, side in ((left, left_nodes), (right, right_nodes)):
            if len(side) == 0:
                raise ConfigError(f"scene {scene!r} has no items or entities to align")
        edges, gold = joint_edges(index.edges, {"item": 0, "entity": sizes[0]})
        seeds, held = split_pairs(orient_pairs(gold, left_nodes, right_nodes, len(nodes)), seed_fraction, seed)

        config = AlignConfig(threshold=float(threshold), method=method, seed=int(seed))
        result = run_align(
            x, edges, left_nodes, right_nodes, seeds=seeds, config=config, gold=held if len(held) else None
        )

        def frame(pairs: pd.DataFrame) -> pd.DataFrame:
            lp, rp = pairs["left"].to_numpy(np.int64), pairs["right"].to_numpy(np.int64)
            return pd.DataFrame(
                {
                    "left": node_id[lp],
                    "right": node_id[rp],
                    "kind_left": node_kind[lp],
                    "kind_right": node_kind[rp],
                    "name_left": node_name[lp],
                    "name_right": node_name[rp],
                    "score": pairs["score"].to_numpy(np.float64) if "score" in pairs else 1.0,
                    "csls": pairs["csls"].to_numpy(np.float64) if "csls" in pairs else np.nan,
                    "method": pairs["method"].to_numpy(dtype=object) if "method" in pairs else "gold",
                }
            )

        pairs, review = frame(result.pairs), frame(result.review)
        accepted = pairs[pairs["method"] != "seed"].reset_index(drop=True)
        used = str(result.info["method"])  # "gcn" without seeds falls back to "propagation"
        written = 0
        if write:
            with engine._writing("align") as (_, graph):
                written = graph.write_alignments(
                    accepted[["left", "right", "kind_left", "kind_right", "score", "method"]],
                    used,
                    scenes=(left, right),
                )
        # users are shared by construction (one User node): those with interactions in both scenes
        shared = 0
        inter = index.edges.get(("user", "INTERACTED", "item"))
        if inter is not None and len(inter):
            shared = shared_users(
                inter["src"].to_numpy(np.int64),
                index.item_scene[inter["dst"].to_numpy(np.int64)],
                engine.idmap.index("scene", left),
                engine.idmap.index("scene", right),
            )
        summary: dict[str, Any] = {
            "left": left,
            "right": right,
            "method": used,
            "threshold": float(threshold),
            "seed": int(seed),
            "left_nodes": len(left_nodes),
            "right_nodes": len(right_nodes),
            "edges": int(edges.shape[1]),
            "seeds": len(seeds),
            "held_out": len(held),
        }
        for key in ("hits@1", "hits@10", "mrr", "precision", "recall"):
            if key in result.metrics:
                summary[key] = float(result.metrics[key])
        summary.update(
            {
                "pairs": len(accepted),
                "review": len(review),
                "written": int(written),
                "shared_users": shared,
                "seconds": time.perf_counter() - t0,
            }
        )
        empty = pd.DataFrame({"left": [], "right": []}, dtype=np.int64)
        return SceneAlignment(
            summary=summary,
            pairs=pairs,
            review=review,
            seeds=frame(pd.DataFrame({"left": seeds[:, 0], "right": seeds[:, 1]}) if len(seeds) else empty),
            held_out=frame(pd.DataFrame({"left": held[:, 0], "right": held[:, 1]}) if len(held) else empty),
        )
