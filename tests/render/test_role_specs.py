"""Each provisioning role documents every default in meta/argument_specs.yml and nothing more.

The habit comes from prometheus-community/ansible (argument specs on every role, checked against
the defaults); a knob added to defaults/main.yml without a spec entry, or the reverse, fails here.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
OWNED = ["nvidia_toolkit", "host_memory", "vllm_stack", "vllm_verify"]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", OWNED)
def test_defaults_match_argument_spec(role):
    defaults = _load(ROLES / role / "defaults" / "main.yml")
    spec = _load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(spec), {
        "in defaults only": sorted(set(defaults) - set(spec)),
        "in the spec only": sorted(set(spec) - set(defaults)),
    }
    for name, value in defaults.items():
        assert name.startswith(role + "_"), f"{name} lacks the role prefix"
        assert spec[name].get("description"), f"{name} has no description"
        # A literal default in the spec must be the literal default of defaults/main.yml.
        if "default" in spec[name] and not (isinstance(value, str) and "{{" in value):
            assert spec[name]["default"] == value, name
