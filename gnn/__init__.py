"""Scene-aware graph learning: the model inputs (:class:`GraphInputs`, also as PyG ``HeteroData``), split protocols,
ranking metrics and full-ranking evaluation, CSR propagation, the baseline recommenders (most-popular, BPR-MF,
LightGCN), the main model :class:`SceneGNN`, BPR / in-scene softmax training with early stopping, the item-item
channel fused after training (:class:`ItemItemFusion`) and saved models."""

from scenerec.gnn.artifact import MODEL_CLASSES, build_model, hyperparameters, load_artifact, save_artifact
from scenerec.gnn.data import (
    CSR,
    SPLIT_CODES,
    GraphInputs,
    Interactions,
    KGEdges,
    build_hetero,
    build_inputs,
    validate,
)
from scenerec.gnn.evaluate import ScoreFn, evaluate_scores
from scenerec.gnn.extend import ExtendedRecommender
from scenerec.gnn.fusion import ItemItem, ItemItemFusion, ItemItemReport, tune_item_item
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
from scenerec.gnn.objectives import NegativeSampler
from scenerec.gnn.propagation import normalized_adjacency, propagate
from scenerec.gnn.scenegnn import SceneGNN
from scenerec.gnn.splits import fixed, leave_one_out, random_per_user, ratio_counts, temporal
from scenerec.gnn.train import LOSSES, FitResult, TrainConfig, fit, resolve_loss

__all__ = [
    "BPRMF",
    "CSR",
    "LOSSES",
    "METRICS",
    "MODEL_CLASSES",
    "SPLIT_CODES",
    "ExtendedRecommender",
    "FitResult",
    "GraphInputs",
    "Interactions",
    "ItemItem",
    "ItemItemFusion",
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
    "build_inputs",
    "build_model",
    "evaluate_scores",
    "fit",
    "fixed",
    "hit_at_k",
    "hyperparameters",
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
    "resolve_loss",
    "save_artifact",
    "summarize",
    "temporal",
    "tune_item_item",
    "validate",
]
