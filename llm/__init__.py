"""Text features: transformer text encoders, the embedding cache, node-feature initialisation, scene
classification and semantic search over item texts."""

from scenerec.config import PRECISIONS, RUNTIMES, STATIC_MODEL
from scenerec.llm.cache import EmbeddingCache, text_key
from scenerec.llm.encoder import DEFAULT_MODEL, HFTextEncoder, TextEncoder, default_model_path, model_cache_dir
from scenerec.llm.features import TEXT_LABELS, EmbedStats, embed_dataset
from scenerec.llm.scenes import SceneClassifier, SceneReport, assign_scenes, evaluate, item_features
from scenerec.llm.static import StaticTextEncoder
from scenerec.llm.templates import TextTemplates, texts_frame

__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "RUNTIMES",
    "STATIC_MODEL",
    "TEXT_LABELS",
    "EmbedStats",
    "EmbeddingCache",
    "HFTextEncoder",
    "SceneClassifier",
    "SceneReport",
    "StaticTextEncoder",
    "TextEncoder",
    "TextTemplates",
    "assign_scenes",
    "default_model_path",
    "embed_dataset",
    "evaluate",
    "item_features",
    "model_cache_dir",
    "text_key",
    "texts_frame",
]
