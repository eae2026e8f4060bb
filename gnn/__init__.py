"""Scene-aware graph learning: the graph as PyG ``HeteroData``, split protocols, ranking metrics and full-ranking
evaluation, CSR propagation, the baseline recommenders (most-popular, BPR-MF, LightGCN), the main model :class:`SceneGNN`, and BPR / in-scene
softmax training with early stopping."""

from scenerec.gnn.data import SPLIT_CODES, build_hetero, validate
from scenerec.gnn.evaluate import CSR, Interactions, ScoreFn, evaluate_scores
from scenerec.gnn.extend import ExtendedRecommender
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
from scenerec.gnn.scenegnn import GraphInputs, ItemItem, KGEdges, SceneGNN
from scenerec.gnn.splits import fixed, leave_one_out, random_per_user, ratio_counts, temporal
from scenerec.gnn.train import (
    LOSSES,
    FitResult,
    ItemItemReport,
    NegativeSampler,
    TrainConfig,
    build_model,
    fit,
    load_artifact,
    save_artifact,
    tune_item_item,
)

__all__ = [
    "BPRMF",
    "CSR",
    "LOSSES",
    "METRICS",
    "SPLIT_CODES",
    "ExtendedRecommender",
    "FitResult",
    "GraphInputs",
    "Interactions",
    "ItemItem",
    "ItemItemReport",
    "KGEdges",
    "LightGCN",
    "MostPopular",
    "NegativeSampler",
    "Recommender",
    "SceneGNN",
    "ScoreFn",
    "TrainConfig",
    "build_hetero",
    "build_model",
    "evaluate_scores",
    "fit",
    "fixed",
    "hit_at_k",
    "leave_one_out",
    "load_artifact",
    "mrr_at_k",
    "ndcg_at_k",
    "normalized_adjacency",
    "precision_at_k",
    "propagate",
    "random_per_user",
    "ratio_counts",
    "recall_at_k",
    "save_artifact",
    "summarize",
    "temporal",
    "tune_item_item",
    "validate",
]
