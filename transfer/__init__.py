"""Cross-scene knowledge transfer: entity alignment across scene subgraphs (:mod:`scenerec.transfer.align`)."""

from scenerec.transfer.align import METHODS, AlignConfig, AlignmentResult, align, propagate_features

__all__ = ["METHODS", "AlignConfig", "AlignmentResult", "align", "propagate_features"]
