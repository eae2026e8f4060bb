"""Scene-aware graph learning: the graph as PyG ``HeteroData``, split protocols, ranking metrics and full-ranking
evaluation (models and training come next)."""

from scenerec.gnn.data import SPLIT_CODES, build_hetero, validate
from scenerec.gnn.evaluate import CSR, Interactions, ScoreFn, evaluate_scores
from scenerec.gnn.metrics import (
    METRICS,
    hit_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    summarize,
)
from scenerec.gnn.splits import fixed, leave_one_out, random_per_user, ratio_counts, temporal

__all__ = [
    "CSR",
    "METRICS",
    "SPLIT_CODES",
    "Interactions",
    "ScoreFn",
    "build_hetero",
    "evaluate_scores",
    "fixed",
    "hit_at_k",
    "leave_one_out",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "random_per_user",
    "ratio_counts",
    "recall_at_k",
    "summarize",
    "temporal",
    "validate",
]
