"""scenerec.gnn."""
