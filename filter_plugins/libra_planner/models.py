"""Model catalog loading and model architecture resolution (stub, filled in next)."""

from __future__ import annotations


def load_model_catalog(path: str | None = None) -> dict:
    raise NotImplementedError


def resolve_model_config(instance: dict, filter_name: str) -> dict:
    raise NotImplementedError
