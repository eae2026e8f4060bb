"""Cross-scene knowledge transfer: entity alignment across scene subgraphs (:mod:`scenerec.transfer.align`) and the
cross-scene recommender with the per-scene gate (:mod:`scenerec.transfer.crossscene`)."""

from scenerec.transfer.align import METHODS, AlignConfig, AlignmentResult, align, propagate_features
from scenerec.transfer.crossscene import CrossSceneGNN, scene_views

__all__ = ["METHODS", "AlignConfig", "AlignmentResult", "CrossSceneGNN", "align", "propagate_features", "scene_views"]
