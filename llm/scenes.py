"""Scene classification: predict the scene of an item from its features (text embedding plus attributes).

The generic dataset format allows an item without a ``scene``. Given items whose scene is known, a
:class:`SceneClassifier` (multinomial logistic regression: one linear layer and a softmax, L2 weight decay,
full-batch L-BFGS in torch) learns to tell the scenes apart from :func:`item_features` (the item's L2-normalised
text embedding next to a hashing bag of its attributes), and :func:`assign_scenes` proposes a scene with a
confidence for the unlabelled ones, leaving low-confidence proposals unassigned for a person to decide.

:func:`evaluate` measures how well that works on a stratified held-out split; :func:`accuracy`,
:func:`confusion_matrix`, :func:`per_class_prf` and :func:`macro_f1` are the metrics it reports.

Everything here is pure computation on arrays the caller passes: no database, no files.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scenerec.errors import ConfigError, DataFormatError

#: Attribute keys left out of :func:`attribute_features` by default: ids, URLs and images are unique per item
#: (``source_id``, ``asin``, ...), so they carry no information about the scene, only hashing collisions.
DEFAULT_SKIP_KEYS = r"(^|_)(id|ids|url|uri|href|image|images|picture|asin|sku|isbn)($|_)"

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


# --------------------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------------------


def _tokens(key: str, value: Any) -> Iterator[str]:
    """Hashing tokens of one attribute: ``key=value`` and, for text values, ``key:word`` for each word.

    Lists give the tokens of each element; nested objects give those of ``key.subkey``; ``None`` and ``""`` give
    nothing; other scalars (numbers, booleans) give ``key=<JSON of the value>``.
    """
    if value is None:
        return
    if isinstance(value, Mapping):
        for sub, v in value.items():
            yield from _tokens(f"{key}.{sub}", v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tokens(key, v)
    elif isinstance(value, str):
        text = " ".join(value.lower().split())
        if not text:
            return
        yield f"{key}={text}"
        words = _WORD.findall(text)
        if len(words) > 1 or (words and words[0] != text):
            for w in words:
                yield f"{key}:{w}"
    else:
        yield f"{key}={json.dumps(value, sort_keys=True)}"


def _bucket(token: str, dim: int) -> tuple[int, float]:
    """Column and sign of ``token`` (signed feature hashing; blake2b, so the same on every run and machine)."""
    h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    return (h >> 1) % dim, (1.0 if h & 1 else -1.0)


def attribute_features(
    attributes: Sequence[str], dim: int = 256, *, skip_keys: str | None = DEFAULT_SKIP_KEYS
) -> np.ndarray:
    """A hashing bag of the attribute tokens of each item: float32 array of shape ``(len(attributes), dim)``.

    ``attributes[i]`` is the item's attributes as a JSON object string (as in ``Dataset.items["attributes"]``) or
    ``""`` for none. Each attribute gives the token ``key=value`` (value lower-cased, whitespace collapsed) and,
    for a text value of several words, one token ``key:word`` per word, so that two category paths sharing
    their first level share features. Tokens are hashed with blake2b (deterministic, unlike Python's salted
    ``hash``) to a column and a sign (signed hashing keeps collisions from adding up); repeated tokens count
    again. Each row is then scaled to unit L2 length; an item without attributes (or with only skipped keys)
    gets a row of zeros. Keys matching the regular expression ``skip_keys`` (default: ids, URLs, images; see
    :data:`DEFAULT_SKIP_KEYS`) are left out; ``None`` keeps every key.

    Raises :class:`~scenerec.errors.DataFormatError` for a string that is not a JSON object, naming its row, and
    :class:`~scenerec.errors.ConfigError` for ``dim < 1``.
    """
    if dim < 1:
        raise ConfigError(f"attribute feature dim must be positive, got {dim}")
    skip = re.compile(skip_keys, re.IGNORECASE) if skip_keys else None
    out = np.zeros((len(attributes), dim), dtype=np.float64)
    buckets: dict[str, tuple[int, float]] = {}
    for row, text in enumerate(attributes):
        if not isinstance(text, str):
            if text is None or pd.isna(text):
                continue
            raise DataFormatError(f"attributes of row {row} must be a JSON string, got {type(text).__name__}")
        if not text.strip():
            continue
        try:
            attrs = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"attributes of row {row} are not valid JSON ({exc.msg}): {text[:80]!r}") from exc
        if not isinstance(attrs, dict):
            raise DataFormatError(f"attributes of row {row} are a JSON {type(attrs).__name__}, not an object")
        for key, value in attrs.items():
            if skip is not None and skip.search(str(key)):
                continue
            for tok in _tokens(str(key).strip().lower(), value):
                b = buckets.get(tok)
                if b is None:
                    b = buckets[tok] = _bucket(tok, dim)
                out[row, b[0]] += b[1]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out.astype(np.float32)


def item_features(
    embeddings: np.ndarray,
    attributes: Sequence[str],
    attribute_dim: int = 256,
    attribute_weight: float = 0.5,
    *,
    skip_keys: str | None = DEFAULT_SKIP_KEYS,
) -> np.ndarray:
    """Features of each item: float32 array of shape ``(n, d + attribute_dim)``.

    ``embeddings``: ``(n, d)`` text vectors of the items (e.g. from ``HFTextEncoder.encode``), row ``i`` for
    ``attributes[i]``. The result is ``[embeddings | attribute_weight * attribute_features(attributes)]``: both
    parts have unit-length rows, so ``attribute_weight`` is the weight of the attributes relative to the text
    (``0`` keeps the columns but zeroes them).
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ConfigError(f"embeddings must be a 2-D array (items x dim), got shape {emb.shape}")
    if emb.shape[0] != len(attributes):
        raise ConfigError(f"{emb.shape[0]} embeddings but {len(attributes)} attribute strings; give one per item")
    if not math.isfinite(attribute_weight) or attribute_weight < 0:
        raise ConfigError(f"attribute_weight must be a finite number >= 0, got {attribute_weight}")
    attrs = attribute_features(attributes, attribute_dim, skip_keys=skip_keys)
    return np.hstack([emb.astype(np.float32, copy=False), np.float32(attribute_weight) * attrs])


# --------------------------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------------------------


def _check_matrix(X: np.ndarray, what: str = "X") -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ConfigError(f"{what} must be a 2-D array (items x features), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ConfigError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.size and not np.isfinite(arr).all():
        raise ConfigError(f"{what} holds NaN or infinite values (rows {np.flatnonzero(~np.isfinite(arr).all(1))[:5]})")
    return arr


def _check_labels(X: np.ndarray, scenes: Sequence[str]) -> list[str]:
    labels = [str(s) for s in scenes]
    if len(labels) != X.shape[0]:
        raise ConfigError(f"X has {X.shape[0]} rows but {len(labels)} scenes were given; give one scene per row")
    blank = [i for i, s in enumerate(labels) if not s.strip()]
    if blank:
        raise ConfigError(
            f"{len(blank)} rows have an empty scene (first: row {blank[0]}); fit on labelled items only and use "
            "assign_scenes for the others"
        )
    counts = pd.Series(labels).value_counts()
    if len(counts) < 2:
        raise ConfigError(f"scene classification needs at least 2 scenes, got {sorted(counts.index)}")
    few = counts[counts < 2]
    if len(few):
        raise ConfigError(
            "every scene needs at least 2 labelled items; too few for: "
            + ", ".join(f"{s!r} ({n})" for s, n in sorted(few.items()))
        )
    return labels


class SceneClassifier:
    """Multinomial logistic regression from item features to scenes.

    One linear layer ``logits = X @ W.T + b`` and a softmax, trained full-batch on the mean cross-entropy plus
    ``weight_decay / 2 * ||W||²`` (the bias is not penalised) with torch's L-BFGS (strong Wolfe line search) for
    at most ``epochs`` iterations, in float64 on the CPU. The loss is convex, so the result hardly depends on the
    start; ``seed`` fixes the small random initial weights so that two fits on the same data give the same
    probabilities. ``classes`` (sorted scene ids) orders the columns of :meth:`predict_proba`.

    ``weight_decay`` of ``1e-3`` corresponds to scikit-learn's ``C = 1 / (1e-3 * n)``; larger values give softer
    (less confident) probabilities.
    """

    def __init__(self, *, weight_decay: float = 1e-3, epochs: int = 100, seed: int = 0) -> None:
        if not math.isfinite(weight_decay) or weight_decay < 0:
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        if epochs < 1:
            raise ConfigError(f"epochs must be positive, got {epochs}")
        self.weight_decay = float(weight_decay)
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.classes: list[str] = []
        #: ``(n_classes, n_features)`` weights and ``(n_classes,)`` bias, float64; ``None`` until fitted.
        self.weight: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        #: Final training loss (regularised), for inspection.
        self.loss_: float | None = None

    @property
    def n_features(self) -> int:
        """Number of feature columns the classifier was fitted on (0 before :meth:`fit`)."""
        return 0 if self.weight is None else int(self.weight.shape[1])

    def clone(self) -> SceneClassifier:
        """An unfitted classifier with the same settings."""
        return SceneClassifier(weight_decay=self.weight_decay, epochs=self.epochs, seed=self.seed)

    def fit(self, X: np.ndarray, scenes: Sequence[str]) -> SceneClassifier:
        """Learn from ``X`` ``(n, d)`` features and ``scenes`` (``n`` non-empty scene ids); returns ``self``.

        Needs at least 2 scenes, each with at least 2 items (:class:`~scenerec.errors.ConfigError` otherwise).
        """
        import torch

        arr = _check_matrix(X)
        labels = _check_labels(arr, scenes)
        self.classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        y = torch.tensor([index[s] for s in labels], dtype=torch.long)
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
        k, d = len(self.classes), arr.shape[1]
        gen = torch.Generator().manual_seed(self.seed)
        w = (0.01 * torch.randn(k, d, generator=gen, dtype=torch.float64)).requires_grad_(True)
        b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [w, b],
            lr=1.0,
            max_iter=self.epochs,
            history_size=20,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )
        wd = self.weight_decay

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 0.5 * wd * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            final = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 0.5 * wd * (w * w).sum()
        self.weight = w.detach().numpy().copy()
        self.bias = b.detach().numpy().copy()
        self.loss_ = float(final)
        return self

    def _require_fitted(self, X: np.ndarray) -> np.ndarray:
        if self.weight is None or self.bias is None:
            raise ConfigError("the scene classifier is not fitted yet; call fit() or from_state_dict() first")
        arr = _check_matrix(X)
        if arr.shape[1] != self.n_features:
            raise ConfigError(
                f"X has {arr.shape[1]} feature columns but the classifier was fitted on {self.n_features}; build "
                "the features the same way (same embedding model, attribute_dim and attribute_weight)"
            )
        return arr

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits: float64 array of shape ``(n, len(classes))``."""
        arr = self._require_fitted(X)
        assert self.weight is not None and self.bias is not None
        return np.asarray(arr, dtype=np.float64) @ self.weight.T + self.bias

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Scene probabilities: float64 array of shape ``(n, len(classes))``, rows summing to 1."""
        z = self.decision_function(X)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The most probable scene of each row and its probability (the confidence, float64 array ``(n,)``).

        Ties go to the first scene in :attr:`classes`.
        """
        p = self.predict_proba(X)
        best = p.argmax(axis=1)
        return [self.classes[i] for i in best], p[np.arange(len(p)), best]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted classifier, as plain JSON-serialisable values.

        Keys: ``kind``, ``version``, ``classes`` (list of str), ``weight`` (``n_classes`` lists of ``n_features``
        floats), ``bias`` (list of floats), ``weight_decay``, ``epochs``, ``seed``.
        """
        if self.weight is None or self.bias is None:
            raise ConfigError("the scene classifier is not fitted yet; nothing to save")
        return {
            "kind": "scenerec.SceneClassifier",
            "version": 1,
            "classes": list(self.classes),
            "weight": self.weight.tolist(),
            "bias": self.bias.tolist(),
            "weight_decay": self.weight_decay,
            "epochs": self.epochs,
            "seed": self.seed,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> SceneClassifier:
        """The classifier saved by :meth:`state_dict` (weights may be lists or arrays)."""
        if state.get("kind") != "scenerec.SceneClassifier" or state.get("version") != 1:
            raise ConfigError(
                f"not a saved SceneClassifier (kind={state.get('kind')!r}, version={state.get('version')!r})"
            )
        clf = cls(weight_decay=float(state["weight_decay"]), epochs=int(state["epochs"]), seed=int(state["seed"]))
        classes = [str(c) for c in state["classes"]]
        weight = np.asarray(state["weight"], dtype=np.float64)
        bias = np.asarray(state["bias"], dtype=np.float64)
        if weight.ndim != 2 or weight.shape[0] != len(classes) or bias.shape != (len(classes),):
            raise ConfigError(
                f"saved SceneClassifier is inconsistent: {len(classes)} classes, weight {weight.shape}, bias {bias.shape}"
            )
        clf.classes, clf.weight, clf.bias = classes, weight, bias
        return clf

    def __repr__(self) -> str:
        fitted = f"classes={self.classes}, n_features={self.n_features}" if self.weight is not None else "unfitted"
        return f"SceneClassifier(weight_decay={self.weight_decay}, epochs={self.epochs}, seed={self.seed}, {fitted})"


# --------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------


def _pair(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[list[str], list[str]]:
    t, p = [str(s) for s in y_true], [str(s) for s in y_pred]
    if len(t) != len(p):
        raise ConfigError(f"{len(t)} true scenes but {len(p)} predicted ones")
    if not t:
        raise ConfigError("no scenes to score")
    return t, p


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Share of rows whose predicted scene equals the true one."""
    t, p = _pair(y_true, y_pred)
    return sum(a == b for a, b in zip(t, p, strict=True)) / len(t)


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Counts ``C[i, j]`` of rows of true scene ``classes[i]`` predicted as ``classes[j]``: int64 ``(k, k)``.

    Rows whose true or predicted scene is not in ``classes`` are not counted.
    """
    t, p = _pair(y_true, y_pred)
    index = {c: i for i, c in enumerate(classes)}
    if len(index) != len(classes):
        raise ConfigError(f"classes must be distinct, got {list(classes)}")
    cm = np.zeros((len(index), len(index)), dtype=np.int64)
    for a, b in zip(t, p, strict=True):
        if a in index and b in index:
            cm[index[a], index[b]] += 1
    return cm


def per_class_prf(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision, recall, F1 and support of each scene: DataFrame indexed by scene (in ``classes`` order).

    For scene ``c``: ``tp`` = rows of true ``c`` predicted ``c``; precision = ``tp / (rows predicted c)``;
    recall = ``tp / (rows of true c)`` (the support); F1 = ``2 P R / (P + R)``. Conventions for empty
    denominators (as scikit-learn's ``zero_division=0``): a scene that is never predicted has precision 0, a
    scene with no true rows has recall 0, and F1 is 0 when precision and recall are both 0. ``classes``
    defaults to the sorted union of the true and predicted scenes; a prediction outside ``classes`` counts
    against the recall of its true scene and against no scene's precision.
    """
    t, p = _pair(y_true, y_pred)
    names = sorted(set(t) | set(p)) if classes is None else [str(c) for c in classes]
    rows = []
    for c in names:
        tp = sum(a == c and b == c for a, b in zip(t, p, strict=True))
        predicted = sum(b == c for b in p)
        support = sum(a == c for a in t)
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append({"scene": c, "precision": prec, "recall": rec, "f1": f1, "support": support})
    frame = pd.DataFrame(rows, columns=["scene", "precision", "recall", "f1", "support"]).set_index("scene")
    return frame.astype({"precision": "float64", "recall": "float64", "f1": "float64", "support": "int64"})


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str] | None = None) -> float:
    """Unweighted mean of the per-scene F1 of :func:`per_class_prf` over ``classes``."""
    frame = per_class_prf(y_true, y_pred, classes)
    if frame.empty:
        raise ConfigError("no classes to average over")
    return float(frame["f1"].mean())


# --------------------------------------------------------------------------------------------------------------
# Evaluation and assignment
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SceneReport:
    """Held-out quality of a scene classifier (see :func:`evaluate`)."""

    accuracy: float
    macro_f1: float
    #: Per scene: ``precision``, ``recall``, ``f1``, ``support`` (held-out rows of that scene), indexed by scene.
    per_scene: pd.DataFrame
    #: ``confusion[i, j]``: held-out rows of scene ``classes[i]`` predicted as ``classes[j]``.
    confusion: np.ndarray
    classes: list[str]
    n_train: int
    n_test: int
    #: Row numbers (into the ``X`` given to :func:`evaluate`) of the held-out rows, and their predictions.
    test_index: np.ndarray = field(repr=False)
    predicted: list[str] = field(repr=False)
    confidence: np.ndarray = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """Per-scene table with ``precision, recall, f1, support`` columns, indexed by scene."""
        return self.per_scene.copy()

    def summary(self) -> dict[str, Any]:
        """Plain numbers: accuracy, macro-F1, train/test sizes and the F1 of each scene."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "f1": {str(k): float(v) for k, v in self.per_scene["f1"].items()},
        }

    def __str__(self) -> str:
        table = self.per_scene.to_string(float_format=lambda v: f"{v:.4f}")
        return (
            f"scene classification: {self.n_train} training items, {self.n_test} held out\n"
            f"{table}\n"
            f"accuracy {self.accuracy:.4f}   macro-F1 {self.macro_f1:.4f}"
        )


def stratified_split(scenes: Sequence[str], test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row numbers (sorted int64 arrays): ``round(test_fraction * n)`` rows of each scene held out.

    Each scene keeps at least 2 training rows and holds out at least 1, so each needs 3 rows or more. The rows
    held out are drawn with ``numpy.random.default_rng(seed)``, scene by scene in sorted order.
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    labels = [str(s) for s in scenes]
    rng = np.random.default_rng(seed)
    arr = np.asarray(labels, dtype=object)
    test: list[np.ndarray] = []
    small: list[str] = []
    for c in sorted(set(labels)):
        rows = np.flatnonzero(arr == c)
        if len(rows) < 3:
            small.append(f"{c!r} ({len(rows)})")
            continue
        n_test = min(max(1, round(test_fraction * len(rows))), len(rows) - 2)
        test.append(rng.choice(rows, size=n_test, replace=False))
    if small:
        raise ConfigError("evaluation needs at least 3 labelled items per scene; too few for: " + ", ".join(small))
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


def evaluate(
    X: np.ndarray,
    scenes: Sequence[str],
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    classifier: SceneClassifier | None = None,
) -> SceneReport:
    """Fit on a stratified split of ``X`` ``(n, d)`` / ``scenes`` (``n``) and report on the held-out part.

    The split is :func:`stratified_split` with ``test_fraction`` and ``seed``; the model is a fresh copy of
    ``classifier``'s settings (default: :class:`SceneClassifier` with its defaults), so ``classifier`` itself is
    left untouched.
    """
    arr = _check_matrix(X)
    labels = _check_labels(arr, scenes)
    train, test = stratified_split(labels, test_fraction, seed)
    clf = (classifier or SceneClassifier()).clone()
    clf.fit(arr[train], [labels[i] for i in train])
    predicted, confidence = clf.predict(arr[test])
    truth = [labels[i] for i in test]
    return SceneReport(
        accuracy=accuracy(truth, predicted),
        macro_f1=macro_f1(truth, predicted, clf.classes),
        per_scene=per_class_prf(truth, predicted, clf.classes),
        confusion=confusion_matrix(truth, predicted, clf.classes),
        classes=list(clf.classes),
        n_train=len(train),
        n_test=len(test),
        test_index=test,
        predicted=predicted,
        confidence=confidence,
    )


def assign_scenes(
    clf: SceneClassifier, X: np.ndarray, ids: Sequence[str], *, min_confidence: float = 0.8
) -> pd.DataFrame:
    """Proposed scene of each item: DataFrame with columns ``id, scene, confidence, assigned`` (one row per id).

    ``X`` ``(n, d)`` holds the features of the items ``ids`` (``n``), built like the training features. ``scene``
    is the most probable scene and ``confidence`` its probability; ``assigned`` is True when the confidence is
    at least ``min_confidence``. Rows below it are still listed, with their best guess and ``assigned`` False,
    for a person to decide: a low-confidence scene is never forced.
    """
    if not 0 <= min_confidence <= 1:
        raise ConfigError(f"min_confidence must be between 0 and 1, got {min_confidence}")
    arr = _check_matrix(X)
    if arr.shape[0] != len(ids):
        raise ConfigError(f"X has {arr.shape[0]} rows but {len(ids)} ids were given; give one id per row")
    scene, conf = clf.predict(arr)
    return pd.DataFrame(
        {
            "id": pd.Series([str(i) for i in ids], dtype="string"),
            "scene": pd.Series(scene, dtype="string"),
            "confidence": pd.Series(conf, dtype="float64"),
            "assigned": pd.Series(conf >= min_confidence, dtype="bool"),
        }
    )
