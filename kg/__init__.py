"""The scene knowledge graph: schema, graph-store backends (LadybugDB embedded, Neo4j), bulk ingestion,
parameterised queries, scene subgraphs, networkx export, typed edge tables for the GNN, and atomic rebuilds."""

from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.rebuild import (
    FeatureStep,
    NodeVectors,
    RebuildReport,
    current_generation,
    load_features,
    load_idmap,
    open_store,
    read_manifest,
    rebuild,
)
from scenerec.kg.schema import NODES, RELS, check_label, check_property, check_rel
from scenerec.kg.store import EdgeIndex, GraphStore, LoadStats, Subgraph
from scenerec.kg.tables import EdgeTable, GraphTables, build_tables
from scenerec.kg.update import UpdateReport, update

__all__ = [
    "NODES",
    "RELS",
    "EdgeIndex",
    "EdgeTable",
    "FeatureStep",
    "GraphStore",
    "GraphTables",
    "LadybugStore",
    "LoadStats",
    "NodeVectors",
    "RebuildReport",
    "Subgraph",
    "UpdateReport",
    "build_tables",
    "check_label",
    "check_property",
    "check_rel",
    "current_generation",
    "load_features",
    "load_idmap",
    "open_store",
    "read_manifest",
    "rebuild",
    "update",
]
