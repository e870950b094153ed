"""The README is the front door: it must name every knob an operator may set.

Every public variable in a role's ``defaults/main.yml`` (internal ones start with ``__``) must
appear in README.md, and the README's two set-up commands must be the ones the Makefile and
``.ci/run`` implement.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _role_defaults() -> list[tuple[str, str]]:
    pairs = []
    for defaults in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        data = yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}
        for name in data:
            if not name.startswith("__"):
                pairs.append((defaults.parts[-3], name))
    return pairs


DEFAULTS = _role_defaults()


def test_roles_have_defaults():
    assert DEFAULTS, "no roles/*/defaults/main.yml found"


@pytest.mark.parametrize(("role", "variable"), DEFAULTS, ids=[f"{r}:{v}" for r, v in DEFAULTS])
def test_every_role_default_is_documented(role, variable):
    assert re.search(rf"`{re.escape(variable)}`", README), f"{role}: `{variable}` is not documented in README.md"


@pytest.mark.parametrize("variable", ["tier", "vllm_stack_dir", "vllm_stack_start", "host_memory_swap_activate"])
def test_contract_variables_are_documented(variable):
    assert f"`{variable}`" in README


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
    assert "make test" in README
    assert "|| true" not in ci and "set +e" not in ci
