"""Rosetta client for VectorDBBench: copy this folder to
vectordb_bench/backend/clients/rosetta/ (see bench/adapters/README.md)."""
