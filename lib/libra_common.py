"""What every thin Ansible plugin of this project needs before it calls the pure code in lib/.

Ansible loads every filter plugin file in each worker process that templates a filter, that is
for nearly every task, so a plugin file imports nothing heavy at load time: the code in lib/ is
imported when a filter first runs (``lib_module``), and the error classes when a filter first
fails. Importing libra_planner (jsonschema among it) at load time was a third of the controller's
CPU in a provisioning run.
"""

from __future__ import annotations

import importlib
from typing import Any


def plain(value: Any) -> Any:
    """Plain Python containers: Ansible may hand a filter lazy or tagged dicts and lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def lib_module(name: str):
    """The module ``name`` of lib/ (e.g. ``libra_planner.tiers``), imported on first use."""
    return importlib.import_module(name)


def _error_classes(errors) -> tuple:
    """``errors`` as a tuple of classes; a ``"module:Class"`` string is imported here."""
    out = []
    for spec in errors if isinstance(errors, tuple) else (errors,):
        if isinstance(spec, str):
            module, _, attr = spec.partition(":")
            spec = getattr(lib_module(module), attr)
        out.append(spec)
    return tuple(out)


def ansible_filter(func, errors, name: str | None = None, plain_args: bool = True):
    """``func`` as an Ansible filter: plain arguments (unless ``plain_args`` is false), and the
    given ``errors`` (classes, or ``"module:Class"`` paths imported only when a filter fails)
    raised as AnsibleFilterError (prefixed with ``name`` when given)."""

    def wrapper(*args, **kwargs):
        if plain_args:
            args, kwargs = [plain(a) for a in args], {k: plain(v) for k, v in kwargs.items()}
        try:
            return func(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, _error_classes(errors)):
                raise
            from ansible.errors import AnsibleFilterError  # noqa: PLC0415 (lib/ stays importable without Ansible)

            raise AnsibleFilterError(f"{name}: {err}" if name else str(err)) from err

    wrapper.__name__ = name or func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper
