"""Resolved tiers to draw, for every test here (the cases live in picturekit.py)."""

from __future__ import annotations

import pytest

from picturekit import CASES, resolved_case


@pytest.fixture(scope="session")
def resolved_cases() -> dict:
    return {name: resolved_case(name) for name in CASES}
