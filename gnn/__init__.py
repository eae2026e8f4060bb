"""Scene-aware graph learning: the graph as PyG ``HeteroData``, split protocols, ranking metrics and full-ranking
evaluation, CSR propagation and the baseline recommenders (most-popular, BPR-MF, LightGCN)."""

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
from scenerec.gnn.models import BPRMF, LightGCN, MostPopular, Recommender
from scenerec.gnn.propagation import normalized_adjacency, propagate
from scenerec.gnn.splits import fixed, leave_one_out, random_per_user, ratio_counts, temporal

__all__ = [
    "BPRMF",
    "CSR",
    "METRICS",
    "SPLIT_CODES",
    "Interactions",
    "LightGCN",
    "MostPopular",
    "Recommender",
    "ScoreFn",
    "build_hetero",
    "evaluate_scores",
    "fixed",
    "hit_at_k",
    "leave_one_out",
    "mrr_at_k",
    "ndcg_at_k",
    "normalized_adjacency",
    "precision_at_k",
    "propagate",
    "random_per_user",
    "ratio_counts",
    "recall_at_k",
    "summarize",
    "temporal",
    "validate",
]
