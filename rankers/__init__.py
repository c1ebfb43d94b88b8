"""Rankers: re-order each user's candidates and explain each pick (see rankers/base.py)."""
