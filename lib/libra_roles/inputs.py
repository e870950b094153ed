"""Input checks shared by every role's ``validate`` entry point.

A role's tasks/validate.yml hands its inputs and a rule per input to ``input_errors``; each error
names the field, what it got and what is allowed. The rules are the ones argument specs cannot
express (absolute paths, characters a file format cannot hold, ranges).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def _shown(value: Any, secret: bool) -> str:
    return "(hidden)" if secret else repr(value)


def _check(name: str, value: Any, rule: Mapping[str, Any]) -> list[str]:
    secret = bool(rule.get("secret"))
    got = _shown(value, secret)
    if value is None or (isinstance(value, str) and value == ""):
        if rule.get("required"):
            return [f"{name} is required"]
        return []
    errors = []
    kind = rule.get("type")
    if kind == "path":
        if not isinstance(value, str) or not value.startswith("/"):
            errors.append(f"{name} must be an absolute path (starting with /), got {got}")
        elif "\n" in value or "'" in value:
            errors.append(f"{name} may not contain a newline or a single quote, got {got}")
    elif kind == "int":
        try:
            number = int(str(value))
        except ValueError:
            return [f"{name} must be an integer, got {got}"]
        low, high = rule.get("min"), rule.get("max")
        if low is not None and number < low or high is not None and number > high:
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            errors.append(f"{name} must be in {bounds}, got {number}")
    elif kind == "bool":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false", "yes", "no", "1", "0"):
            errors.append(f"{name} must be true or false, got {got}")
    if "choices" in rule and value not in rule["choices"]:
        errors.append(f"{name} must be one of {', '.join(map(str, rule['choices']))}, got {got}")
    forbidden = [c for c in rule.get("forbid", []) if isinstance(value, str) and c in value]
    if forbidden:
        names = {"'": "a single quote", "\n": "a newline", '"': "a double quote", "$": "a dollar sign"}
        errors.append(f"{name} may not contain {' or '.join(names.get(c, repr(c)) for c in forbidden)}"
                      f" (it is written literally to a file), got {got}")
    if "pattern" in rule and isinstance(value, str) and not re.fullmatch(rule["pattern"], value):
        errors.append(f"{name} must match {rule['pattern']} ({rule.get('meaning', 'see the role README')}), got {got}")
    return errors


def input_errors(values: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every rule broken by ``values``, one message per broken rule, in the order of ``rules``.

    A rule: ``type`` (path | int | bool), ``min``/``max`` (int), ``choices``, ``forbid``
    (characters), ``pattern`` (+ ``meaning``), ``required``, ``secret`` (the value is not shown).
    A field the rules name but ``values`` lacks is an error: the caller forgot to pass it.
    """
    errors: list[str] = []
    for name, rule in rules.items():
        if name not in values:
            errors.append(f"{name} was not passed to the input check")
            continue
        errors.extend(_check(name, values[name], rule))
    return errors
