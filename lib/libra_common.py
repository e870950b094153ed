"""What every thin Ansible plugin of this project needs before it calls the pure code in lib/."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """Plain Python containers: Ansible may hand a filter lazy or tagged dicts and lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
