"""Data of playbooks/rollout.yml that is not the report (filter_plugins/rollout_report.py):
the code digest, the stack-file snapshot and the batch gate."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def tree_digest(paths: Iterable[str]) -> str:
    """sha256 over every file below ``paths`` (names relative to each path's parent and the
    contents, in sorted order; byte-code caches left out). Used through the
    ``rollout_tree_digest`` lookup: a change of the code that builds a stack is a change of
    every host's inputs."""
    if isinstance(paths, (str, bytes)):
        paths = [paths]
    digest = hashlib.sha256()
    for top in sorted(str(p) for p in paths):
        if not os.path.exists(top):
            raise FileNotFoundError(f"rollout_tree_digest: {top} does not exist")
        files = [top] if os.path.isfile(top) else sorted(
            os.path.join(d, f) for d, _dirs, fs in os.walk(top) for f in fs
            if "__pycache__" not in d and not f.endswith(".pyc"))
        for path in files:
            digest.update(os.path.relpath(path, os.path.dirname(top)).encode() + b"\0")
            with open(path, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def snapshot(found: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """Checksum per file name of ``names`` from ``ansible.builtin.find`` results (``path``,
    ``checksum``); "absent" for a name that was not found."""
    by_name = {os.path.basename(str(f["path"])): f.get("checksum", "absent") for f in found}
    return {name: by_name.get(name, "absent") for name in names}


def found_checksum(found: Sequence[Mapping[str, Any]], name: str) -> str:
    """Checksum of the file ``name`` among ``find`` results, "absent" when it was not found."""
    return snapshot(found, [name])[name]


def batch_gate(records: Sequence[Mapping[str, Any] | None], max_fail_percentage: float) -> dict[str, Any]:
    """Whether a cut-over batch stops the rollout: more than ``max_fail_percentage`` percent of
    the batch's hosts ended other than ``deployed``. This is the rule the Ansible documentation
    gives for the ``max_fail_percentage`` play keyword ("the percentage of hosts in the current
    batch that failed", docs.ansible.com playbooks_error_handling.html#setting-a-maximum-failure-percentage),
    applied by the playbook itself so that it does not depend on how a given ansible-core
    release counts failures across batches. A host without a record counts as failed."""
    size = len(records)
    if size == 0:
        return {"batch": 0, "failed": 0, "tripped": False}
    failed = sum(1 for r in records if not isinstance(r, Mapping) or r.get("result") != "deployed")
    return {"batch": size, "failed": failed, "tripped": failed / size > float(max_fail_percentage) / 100}


def report_files(report_dir: str, name: str, json_text: str, markdown: str,
                 pictures: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The files of one report write, as entries of the stack's files module: ``<name>.json``,
    ``<name>.md`` and each host's picture that has a file name (``file``, ``svg``). The JSON
    text gets a final newline when it has none."""
    json_text = json_text if json_text.endswith("\n") else json_text + "\n"
    out = [{"path": f"{report_dir}/{name}.json", "mode": "0644", "content": json_text},
           {"path": f"{report_dir}/{name}.md", "mode": "0644", "content": markdown}]
    out += [{"path": f"{report_dir}/{p['file']}", "mode": "0644", "content": p["svg"]} for p in pictures if p.get("file")]
    return out
