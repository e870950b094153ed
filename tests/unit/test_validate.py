"""Schema validation: bad inventory input is refused with the field path and what is allowed.

The cases are the bad inputs an operator actually makes (docs: "Bad input" in the provisioning
requirements): an unknown or empty tier, a typo'd knob, utilization above 1, a negative length.
"""

from __future__ import annotations

import json
import os

import jsonschema
import pytest
import yaml

from libra_planner.errors import PlannerError
from libra_planner.validate import SCHEMA_DIR, errors_for, load_schema, schema_names, validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _yaml(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


BAD_INVENTORY = [
    # (id, inventory vars, field path in the error, substrings the message must carry)
    ("unknown-tier", {"tier": "duel"}, "tier", ["'duel'", "dual, single, ultralight, int2, max, auto", "did you mean 'dual'"]),
    ("empty-tier", {"tier": ""}, "tier", ["''", "dual, single, ultralight, int2, max, auto"]),
    ("missing-tier", {}, "tier", ["required", "dual, single, ultralight, int2, max, auto"]),
    (
        "typo-knob",
        {"tier": "single", "vllm_tier_overrides": {"single": {"max_model_length": 1024}}},
        "vllm_tier_overrides.single.max_model_length",
        ["unknown key 'max_model_length'", "max_model_len", "did you mean 'max_model_len'"],
    ),
    (
        "utilization-above-1",
        {"tier": "single", "vllm_tier_overrides": {"single": {"gpu_memory_utilization": 1.5}}},
        "vllm_tier_overrides.single.gpu_memory_utilization",
        ["1.5", "(0, 1]", "'auto'"],
    ),
    (
        "utilization-zero",
        {"tier": "dual", "vllm_tier_overrides": {"dual": {"instances": {"large": {"gpu_memory_utilization": 0}}}}},
        "vllm_tier_overrides.dual.instances.large.gpu_memory_utilization",
        ["0", "(0, 1]"],
    ),
    (
        "negative-length",
        {"tier": "single", "vllm_tier_overrides": {"single": {"max_model_len": -2048}}},
        "vllm_tier_overrides.single.max_model_len",
        ["-2048", "[1, 1048576]"],
    ),
    (
        "string-length",
        {"tier": "single", "vllm_tier_overrides": {"single": {"max_num_batched_tokens": "lots"}}},
        "vllm_tier_overrides.single.max_num_batched_tokens",
        ["'lots'", "integer"],
    ),
    (
        "typo-tier-in-overrides",
        {"tier": "single", "vllm_tier_overrides": {"singel": {"max_model_len": 1024}}},
        "vllm_tier_overrides.singel",
        ["'singel'", "dual, single, ultralight, int2", "did you mean 'single'"],
    ),
    (
        "typo-instance-knob",
        {"tier": "dual", "vllm_tier_overrides": {"dual": {"instances": {"large": {"max_num_seq": 8}}}}},
        "vllm_tier_overrides.dual.instances.large.max_num_seq",
        ["unknown key 'max_num_seq'", "did you mean 'max_num_seqs'"],
    ),
    ("typo-slot", {"tier": "single", "vllm_models": {"smal": "Qwen/Qwen2.5-3B-Instruct"}}, "vllm_models.smal", ["'smal'", "did you mean 'small'"]),
    ("model-id-with-space", {"tier": "single", "vllm_models": {"small": "Qwen 3B"}}, "vllm_models.small", ["'Qwen 3B'"]),
    (
        "bad-kv-dtype",
        {"tier": "single", "vllm_tier_overrides": {"single": {"kv_cache_dtype": "int4"}}},
        "vllm_tier_overrides.single.kv_cache_dtype",
        ["'int4'", "fp8"],
    ),
    ("bad-shm-size", {"tier": "single", "vllm_tier_overrides": {"single": {"shm_size": "4 gigs"}}}, "vllm_tier_overrides.single.shm_size", ["'4 gigs'", "Docker size"]),
    ("negative-gpu-index", {"tier": "auto", "gpu_facts_index": -1}, "gpu_facts_index", ["-1", "[0, 63]"]),
    ("bad-compute-cap", {"tier": "auto", "gpu_facts_compute_capability": "turing"}, "gpu_facts_compute_capability", ["'turing'"]),
]


@pytest.mark.parametrize("data,field,needles", [c[1:] for c in BAD_INVENTORY], ids=[c[0] for c in BAD_INVENTORY])
def test_bad_inventory_is_refused_naming_field_and_allowed(data, field, needles):
    with pytest.raises(PlannerError) as info:
        validate(data, "inventory")
    err = info.value
    assert err.filter_name == "vllm_validate"
    assert err.field == field
    for needle in needles:
        assert needle in err.message, (needle, err.message)
    assert str(err).startswith(f"vllm_validate: field '{field}': ")


GOOD_INVENTORY = [
    {"tier": "auto"},
    {"tier": "single", "vllm_tier_overrides": {"single": {"max_model_len": 1024, "gpu_memory_utilization": 0.5}}},
    {"tier": "dual", "vllm_models": {"large": "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int2"}, "vllm_tier_overrides": {"dual": {"instances": {"large": {"max_num_seqs": 4}}}}},
    {"tier": "int2", "gpu_facts_index": 1, "gpu_facts_preset": "rtx2070"},
    # Ansible hands declared-but-unset variables over as None: not given, not an error.
    {"tier": "ultralight", "vllm_models": None, "vllm_tier_overrides": None},
]


@pytest.mark.parametrize("data", GOOD_INVENTORY)
def test_good_inventory_passes_unchanged(data):
    assert validate(data, "inventory") is data


def test_every_problem_is_reported_not_only_the_first():
    data = {"tier": "x", "vllm_tier_overrides": {"single": {"max_model_len": 0, "swap_space": 4}}}
    fields = [field for field, _ in errors_for(data, "inventory")]
    assert fields == sorted(set(fields), key=fields.index)  # no duplicates
    assert set(fields) == {"tier", "vllm_tier_overrides.single.max_model_len", "vllm_tier_overrides.single.swap_space"}
    with pytest.raises(PlannerError) as info:
        validate(data, "inventory")
    assert "also:" in info.value.message and "swap_space" in info.value.message


def test_filter_name_is_the_callers():
    with pytest.raises(PlannerError) as info:
        validate({"tier": "nope"}, "inventory", filter_name="preflight")
    assert str(info.value).startswith("preflight: field 'tier'")


def test_unknown_schema_lists_known_ones():
    with pytest.raises(PlannerError) as info:
        load_schema("tier")
    assert "inventory" in info.value.message and "tiers" in info.value.message


@pytest.mark.parametrize("name", ["common", "gpus", "inventory", "models", "tiers"])
def test_schemas_are_valid_draft_2020_12(name):
    assert name in schema_names()
    with open(os.path.join(SCHEMA_DIR, f"{name}.schema.json"), encoding="utf-8") as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("rel,schema", [("catalog/tiers.yml", "tiers"), ("catalog/models.yml", "models"), ("catalog/gpus.yml", "gpus")])
def test_catalogs_validate(rel, schema):
    path = os.path.join(ROOT, rel)
    if not os.path.exists(path):
        pytest.skip(f"{rel} not present in this checkout")
    assert errors_for(_yaml(rel), schema) == []


def test_tier_catalog_defects_are_caught():
    catalog = _yaml("catalog/tiers.yml")
    catalog["tiers"]["single"]["instances"][0]["port"] = 70000
    del catalog["tiers"]["dual"]["compose_file"]
    catalog["tiers"]["int2"]["vllm_mode"] = "triple"
    fields = {field for field, _ in errors_for(catalog, "tiers")}
    assert fields == {"tiers.single.instances[0].port", "tiers.dual.compose_file", "tiers.int2.vllm_mode"}


def test_schema_enums_match_the_catalog():
    """The inventory schema's names must be the catalog's (one source of truth, checked here)."""
    catalog = _yaml("catalog/tiers.yml")
    inventory = load_schema("inventory")
    common = load_schema("common")
    assert set(inventory["properties"]["tier"]["enum"]) == {*catalog["tiers"], "auto"}
    assert set(common["$defs"]["tier_name"]["enum"]) == set(catalog["tiers"])
    assert set(common["$defs"]["model_slot"]["enum"]) == set(catalog["models"])
    slots_used = {inst["model_slot"] for tier in catalog["tiers"].values() for inst in tier["instances"]}
    assert slots_used == set(catalog["models"])


def test_models_schema_refuses_missing_architecture_field():
    doc = {"models": {"x/y": {"family": "qwen2", "source": "https://example.invalid", "config": {"hidden_size": 1}}}}
    errors = errors_for(doc, "models")
    assert {field for field, _ in errors} == {"models.x/y.config"}
    # neither a text model's fields nor a multimodal text_config
    assert any("num_hidden_layers" in message or "text_config" in message for _, message in errors), errors


def test_gpu_preset_defects_are_caught():
    doc = _yaml("catalog/gpus.yml")
    doc["gpus"]["rtx2070"]["compute_capability"] = 7.5  # a number, not the string nvidia-smi prints
    doc["gpus"]["t4"]["memory_total_gib"] = 16
    fields = {field for field, _ in errors_for(doc, "gpus")}
    assert fields == {"gpus.rtx2070.compute_capability", "gpus.t4.memory_total_gib"}


def test_filter_module_turns_planner_errors_into_filter_errors():
    from ansible.errors import AnsibleFilterError

    import vllm

    filters = vllm.FilterModule().filters()
    with pytest.raises(AnsibleFilterError) as info:
        filters["vllm_validate"]({"tier": "duel"}, "inventory")
    assert "vllm_validate: field 'tier': 'duel' is not allowed" in str(info.value)
    assert filters["vllm_validate"]({"tier": "auto"}, "inventory") == {"tier": "auto"}
