"""Helpers the tests share: tiny models (models.py) and fixture checkpoints of each family (families.py)."""
