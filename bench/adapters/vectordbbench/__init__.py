"""Adapters of Rosetta for VectorDBBench (the rosetta/ folder is the client package)."""
