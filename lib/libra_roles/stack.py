"""Data of roles/vllm_stack: the .env entries of each vLLM instance, which installed files a
deploy replaces and backs up, and what --diff shows of .env."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# .env name -> instance key, for every instance (instance n > 1 gets `_n` appended to the name).
_ALWAYS = [
    ("VLLM_MODEL", "model"),
    ("SERVED_MODEL_NAME", "served_model_name"),
    ("VLLM_PORT", "port"),
    ("GPU_MEMORY_UTILIZATION", "gpu_memory_utilization"),
    ("MAX_MODEL_LEN", "max_model_len"),
    ("MAX_NUM_BATCHED_TOKENS", "max_num_batched_tokens"),
    ("MAX_NUM_SEQS", "max_num_seqs"),
    ("DTYPE", "dtype"),
]


def suffix(position: int) -> str:
    """The .env name suffix of the instance at ``position`` (0-based): '', '_2', '_3' ..."""
    return "" if position == 0 else f"_{position + 1}"


def service_urls(instances: Sequence[Mapping[str, Any]], container_port: int) -> list[str]:
    """The OpenAI base URL of each instance inside the compose network."""
    return [f"http://{inst['service']}:{int(container_port)}/v1" for inst in instances]


def instances_env(instances: Sequence[Mapping[str, Any]], container_port: int) -> dict[str, str]:
    """The per-instance .env entries: the knobs every instance has, QUANTIZATION and
    KV_CACHE_DTYPE only when set (not auto), KV_CACHE_MEMORY_BYTES only when the plan pins the
    KV cache (an integer; vLLM's --kv-cache-memory-bytes), and VLLM_URL_n of instances after the first (the
    first one's VLLM_URL is a common entry)."""
    env: dict[str, str] = {}
    urls = service_urls(instances, container_port)
    for position, inst in enumerate(instances):
        s = suffix(position)
        for name, key in _ALWAYS:
            if key not in inst:
                raise ValueError(f"instance {inst.get('name', position)} has no {key}")
            env[name + s] = str(inst[key])
        if inst.get("quantization"):
            env["QUANTIZATION" + s] = str(inst["quantization"])
        if (inst.get("kv_cache_dtype") or "auto") != "auto":
            env["KV_CACHE_DTYPE" + s] = str(inst["kv_cache_dtype"])
        pinned = inst.get("kv_cache_memory_bytes")
        if pinned is not None:
            if isinstance(pinned, bool) or not isinstance(pinned, int) or pinned <= 0:
                raise ValueError(f"instance {inst.get('name', position)}: kv_cache_memory_bytes must be a positive "
                                 f"integer or null (got {pinned!r})")
            env["KV_CACHE_MEMORY_BYTES" + s] = str(pinned)
        if position > 0:
            env["VLLM_URL" + s] = urls[position]
    return env


def replaced_files(installed: Sequence[Mapping[str, Any]], staged: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the installed files the staged ones differ from.

    ``installed``: the stat results of the installed files (``item.name``, ``stat.exists``,
    ``stat.checksum``); ``staged``: the template results of the staged files, same order
    (``checksum``). A file not installed yet is not "replaced".
    """
    out = []
    for have, new in zip(installed, staged):
        stat = have.get("stat") or {}
        if stat.get("exists") and stat.get("checksum") != (new.get("checksum") or ""):
            out.append(have["item"]["name"])
    return out


def backup_files(installed: Sequence[Mapping[str, Any]], replaced: Sequence[str], old_compose: Sequence[str],
                 compose_file: str) -> list[str]:
    """The files to keep as ``.prev``.

    The compose file and .env are backed up as a pair whenever either changes or the other stack
    kind's compose file is being replaced, so that a rollback restores a matching pair; other
    replaced files (monitoring config) alone. ``installed`` is ordered as the role's file list:
    the compose file first, .env second.
    """
    exists = [bool((r.get("stat") or {}).get("exists")) for r in installed]
    out: list[str] = []
    if old_compose or compose_file in replaced or ".env" in replaced:
        out.extend(old_compose)
        if exists and exists[0]:
            out.append(compose_file)
        if len(exists) > 1 and exists[1]:
            out.append(".env")
    out.extend(name for name in replaced if name not in (compose_file, ".env"))
    return out


def parse_env(text: str, leave_out: Sequence[str] = ()) -> dict[str, str]:
    """``NAME=value`` lines of a .env file (comments and blank lines skipped), minus ``leave_out``."""
    out = {}
    for line in (text or "").splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        if key not in leave_out:
            out[key] = value
    return out


def env_changes(new_env: Mapping[str, Any], old_text: str, secret_names: Sequence[str]) -> list[str]:
    """``NAME: old -> new`` for every non-secret .env entry that changes, sorted by name."""
    old = parse_env(old_text, secret_names)
    new = {k: str(v) for k, v in new_env.items() if k not in secret_names}
    out = []
    for key in sorted(set(new) | set(old)):
        if new.get(key) != old.get(key):
            out.append(f"{key}: {old.get(key, '(absent)')} -> {new.get(key, '(absent)')}")
    return out


def mask(text: str, secrets: Sequence[str], shown: str = "********") -> str:
    """``text`` with every non-empty secret replaced (longest first, so that a secret containing
    another is masked whole)."""
    out = text or ""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        out = out.replace(secret, shown)
    return out
