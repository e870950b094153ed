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


def ansible_filter(func, errors, name: str | None = None, plain_args: bool = True):
    """``func`` as an Ansible filter: plain arguments (unless ``plain_args`` is false), and the
    given ``errors`` raised as AnsibleFilterError (prefixed with ``name`` when given)."""
    from ansible.errors import AnsibleFilterError  # noqa: PLC0415 (lib/ stays importable without Ansible)

    def wrapper(*args, **kwargs):
        if plain_args:
            args, kwargs = [plain(a) for a in args], {k: plain(v) for k, v in kwargs.items()}
        try:
            return func(*args, **kwargs)
        except errors as err:
            raise AnsibleFilterError(f"{name}: {err}" if name else str(err)) from err

    wrapper.__name__ = name or func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper
