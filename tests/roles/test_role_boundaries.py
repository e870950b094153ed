"""Each role reads only its own inputs; no Jinja program builds lists or dicts in roles/ or playbooks/.

A role's defaults, vars, tasks, handlers and templates may name, inside their Jinja expressions,
only the role's own variables (``<role>_*``, ``__<role>_*``), facts it gathers itself, Ansible's
magic variables and filters. Naming another role's prefix, the playbooks' fact
``vllm_tier_resolved`` or a path outside the role (``role_path ~ '/..'``, ``playbook_dir``) fails
here: the playbooks wire such values into the role's inputs (playbooks/vars/wiring.yml).

LIBRA_CHECK_ROOT points the checks at another checkout (to show them failing on old code).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(os.environ.get("LIBRA_CHECK_ROOT") or Path(__file__).resolve().parents[2])
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
# Keys whose string value is a bare Jinja expression.
BARE = {"when", "that", "changed_when", "failed_when", "until", "loop", "with_items", "assert"}
# Variables only the playbooks may name.
PLAYBOOK_ONLY = {"vllm_tier_resolved", "playbook_dir", "inventory_dir", "tier", "vllm_models", "vllm_tier_overrides"}
EXPR = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
NAME = re.compile(r"(?<![.\w])([A-Za-z_][A-Za-z0-9_]*)")


def _strings(node, key=None):
    """(key, string) pairs of a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str):
        yield key, node


def _expressions(path: Path) -> list[str]:
    text = path.read_text()
    if path.suffix == ".j2":
        return [a or b for a, b in EXPR.findall(text)]
    out = []
    for doc in yaml.safe_load_all(text):
        for key, value in _strings(doc):
            if key in BARE and "{{" not in value:
                out.append(value)
            out.extend(a or b for a, b in EXPR.findall(value))
    return out


def _role_files(role: str) -> list[Path]:
    base = ROOT / "roles" / role
    return sorted(p for sub in ("defaults", "vars", "tasks", "handlers", "templates") for p in (base / sub).rglob("*")
                  if p.is_file() and p.suffix in (".yml", ".yaml", ".j2"))


def foreign_names(role: str) -> list[str]:
    """``file: name`` for every name in ``role``'s expressions that belongs to another role or to the playbooks."""
    others = [r for r in ROLES if r != role and not role.startswith(r + "_")]
    found = []
    for path in _role_files(role):
        if re.search(r"role_path\s*\}\}\s*/\.\.", path.read_text()):
            found.append(f"{path.relative_to(ROOT)}: path outside the role: {{{{ role_path }}}}/..")
        for expr in _expressions(path):
            code = STRING.sub("''", expr)
            for name in NAME.findall(code):
                bare = name.lstrip("_")
                if name in PLAYBOOK_ONLY or any(bare.startswith(o + "_") for o in others):
                    found.append(f"{path.relative_to(ROOT)}: {name}")
            if re.search(r"role_path\s*~\s*'/\.\.", expr) or "/../" in expr:
                found.append(f"{path.relative_to(ROOT)}: path outside the role: {expr.strip()[:80]}")
    return found


@pytest.mark.parametrize("role", ROLES)
def test_role_reads_only_its_own_variables(role):
    assert foreign_names(role) == []


def program_lines() -> list[str]:
    """Lines of roles/ and playbooks/ YAML that build a list or dict in Jinja (append/extend/update
    calls, namespace accumulators, for loops inside a variable's value)."""
    found = []
    for top in ("roles", "playbooks"):
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or path.suffix not in (".yml", ".yaml", ".j2"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\.(append|extend|update)\(|namespace\(", line) or (
                        path.suffix != ".j2" and re.search(r"\{%-?\s*for\b", line)):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_jinja_list_or_dict_programs():
    assert program_lines() == []


def test_the_checks_see_what_they_look_for(tmp_path, monkeypatch):
    """The scanners find a foreign name and an append loop when there is one."""
    role = tmp_path / "roles" / "alpha" / "tasks"
    role.mkdir(parents=True)
    (tmp_path / "roles" / "beta" / "tasks").mkdir(parents=True)
    (role / "main.yml").write_text(
        "- name: A\n  ansible.builtin.set_fact:\n    alpha_x: >-\n      {%- set out = [] -%}{%- for i in beta_list -%}"
        "{%- set _ = out.append(i) -%}{%- endfor -%}{{ out }}\n  when: vllm_tier_resolved.fits\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "ROLES", ["alpha", "beta"])
    assert sorted(n.split(": ")[1] for n in foreign_names("alpha")) == ["beta_list", "vllm_tier_resolved"]
    assert len(program_lines()) == 1
