"""Prefect flows of explained-recs."""
