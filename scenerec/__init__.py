"""scenerec: knowledge-graph-centric multi-scene recommendation.

The layers install as subpackages: :mod:`scenerec.loaders` -> :mod:`scenerec.kg` -> :mod:`scenerec.llm` ->
:mod:`scenerec.gnn` -> :mod:`scenerec.transfer`; this package holds the shared core (errors, id maps, records,
config) and, at the end of the flow, the public API and the CLI. Heavy modules are imported lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": ("scenerec.loaders", "load_dataset"),
    "open_store": ("scenerec.kg", "open_store"),
    "rebuild": ("scenerec.kg", "rebuild"),
    "Dataset": ("scenerec.records", "Dataset"),
    "IdMap": ("scenerec.ids", "IdMap"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'scenerec' has no attribute {name!r}")


__all__ = ["Dataset", "IdMap", "__version__", "load_dataset", "open_store", "rebuild"]
