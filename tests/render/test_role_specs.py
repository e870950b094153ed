"""Each provisioning role documents every default in meta/argument_specs.yml and nothing more.

The habit comes from prometheus-community/ansible (argument specs on every role, checked against
the defaults); a knob added to defaults/main.yml without a spec entry, or the reverse, fails here.
An option without a default is ``required: true`` in the spec (the playbooks wire it, playbooks/vars/wiring.yml),
and the ``validate`` entry point, which the preflight play runs, checks the same options as ``main``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
OWNED = ["preflight", "nvidia_toolkit", "host_memory", "vllm_stack", "vllm_verify"]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", OWNED)
def test_defaults_match_argument_spec(role):
    defaults = _load(ROLES / role / "defaults" / "main.yml")
    specs = _load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]
    spec = specs["main"]["options"]
    required = {name for name, opt in spec.items() if opt.get("required")}
    assert set(defaults) == set(spec) - required, {
        "in defaults only": sorted(set(defaults) - set(spec)),
        "in the spec only, not required": sorted(set(spec) - set(defaults) - required),
        "required but with a default": sorted(required & set(defaults)),
    }
    for name in required:
        assert name.startswith(role + "_"), f"{name} lacks the role prefix"
        assert spec[name].get("description"), f"{name} has no description"
    if (ROLES / role / "tasks" / "validate.yml").exists():
        assert specs["validate"]["options"] == spec, "the validate entry point checks the same options as main"
    for name, value in defaults.items():
        assert name.startswith(role + "_"), f"{name} lacks the role prefix"
        assert spec[name].get("description"), f"{name} has no description"
        # A literal default in the spec must be the literal default of defaults/main.yml.
        if "default" in spec[name] and not (isinstance(value, str) and "{{" in value):
            assert spec[name]["default"] == value, name
