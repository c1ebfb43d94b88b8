"""Stages of the nightly run: one module per stage, plain functions wrapped as Prefect tasks."""
