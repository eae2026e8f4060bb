"""How these artifacts were made: with scenerec 0.1.0 as of commit 6d4a294, when SceneGNN held the item-item channel
(``item_item_channel.*`` and ``fusion`` in its state dict, ``item_item*`` in its hyper-parameters). Run with that
version installed: ``python make.py``. tests/test_model_contract.py loads them with the current code and checks the
scores saved beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scenerec.gnn import CSR, GraphInputs, SceneGNN, TrainConfig, fit, save_artifact, tune_item_item
from scenerec.ids import IdMap
from scenerec.transfer import CrossSceneGNN

HERE = Path(__file__).resolve().parent


def inputs() -> tuple[GraphInputs, CSR]:
    """12 users x 10 items in two scenes, seeded (the test builds the same)."""
    rng = np.random.default_rng(7)
    rows, cols = np.nonzero(rng.random((12, 10)) < 0.45)
    train = CSR.from_pairs(rows, cols, (12, 10))
    vrows, vcols = np.nonzero(rng.random((12, 10)) < 0.15)
    valid = CSR.from_pairs(vrows, vcols, (12, 10))
    text = torch.from_numpy(rng.standard_normal((10, 6)).astype(np.float32))
    scene = np.array([0] * 5 + [1] * 5)
    return GraphInputs(train=train, item_scene=scene, num_scenes=2, item_text=text), valid


def main() -> None:
    data, valid = inputs()
    idmap = IdMap({"user": [f"u{i}" for i in range(12)], "item": [f"i{i}" for i in range(10)]})
    for name, model in (
        ("scenegnn", SceneGNN(data, dim=8, item_item_kind="ease")),
        ("crossscene", CrossSceneGNN(data, dim=8, gate=True, item_bias=True, item_item_kind="knn")),
    ):
        cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=4, loss="softmax", weight_decay=0.0, seed=1, threads=1)
        result = fit(model, data.train, valid, cfg, item_scene=data.item_scene)
        tune_item_item(model, data.train, valid, data.item_scene, regs=(1.0,), exponents=((0.5, 0.5),))
        model.fusion.fill_(1.5)  # a weight that is surely not 0, so the channel's part of the scores is checked
        save_artifact(HERE / name, name, model, cfg, result, idmap)
        with torch.no_grad():
            scores = model.score(torch.arange(12))
            hist = model.score_histories([torch.tensor([0, 6]), torch.tensor([3])], *model())
        np.save(HERE / name / "scores.npy", scores.numpy())
        np.save(HERE / name / "history_scores.npy", hist.numpy())


if __name__ == "__main__":
    main()
