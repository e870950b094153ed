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


def staged_name(name: str) -> str:
    """The file name in the staging directory of an installed file (subfolders flattened)."""
    return name.replace("/", "__")


def stage_entries(files: Sequence[Mapping[str, Any]], contents: Sequence[str], dest_dir: str,
                  installed_dir: str | None, secret: bool, flatten: bool = True) -> list[dict]:
    """The ``vllm_stack_files`` entries that write the role's files: ``files`` is the role's list
    (``name``, ``mode`` (default 0644), ``secret``), ``contents`` their rendered templates in the
    same order. Only the files whose ``secret`` equals ``secret`` (the secret ones go to
    ``secret_files``, whose content is never logged). Each lands in ``dest_dir`` under its name,
    flattened for the staging directory when ``flatten``; with ``installed_dir``, each entry
    compares itself with the installed file."""
    if len(files) != len(contents):
        raise ValueError(f"{len(files)} files but {len(contents)} rendered contents")
    out = []
    for f, text in zip(files, contents):
        if bool(f.get("secret")) != bool(secret):
            continue
        entry = {"name": f["name"], "path": f"{dest_dir}/{staged_name(f['name']) if flatten else f['name']}",
                 "mode": f.get("mode", "0644"), "content": text}
        if installed_dir:
            entry["compare"] = f"{installed_dir}/{f['name']}"
        out.append(entry)
    return out


def _compare(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    return entry.get("compare") or {}


def replaced_files(staged: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the installed files the staged ones differ from.

    ``staged``: the ``files`` result of staging (``name``, ``checksum`` of the staged content,
    ``compare.exists`` and ``compare.checksum`` of the installed file). A file not installed yet
    is not "replaced".
    """
    return [s["name"] for s in staged if _compare(s).get("exists") and _compare(s).get("checksum") != s.get("checksum")]


def backup_files(staged: Sequence[Mapping[str, Any]], replaced: Sequence[str], old_compose: Sequence[str],
                 compose_file: str) -> list[str]:
    """The files to keep as ``.prev``.

    The compose file and .env are backed up as a pair whenever either changes or the other stack
    kind's compose file is being replaced, so that a rollback restores a matching pair; other
    replaced files (monitoring config) alone. ``staged`` as for ``replaced_files``.
    """
    exists = {s["name"]: bool(_compare(s).get("exists")) for s in staged}
    out: list[str] = []
    if old_compose or compose_file in replaced or ".env" in replaced:
        out.extend(old_compose)
        out.extend(name for name in (compose_file, ".env") if exists.get(name))
    out.extend(name for name in replaced if name not in (compose_file, ".env"))
    return out


def install_entries(files: Sequence[Mapping[str, Any]], backups: Sequence[str], staging_dir: str,
                    installed_dir: str, marker: str | None = None, backed_up_compose: str | None = None) -> list[dict]:
    """The ``vllm_stack_files`` entries that install the staged files, in order: the ``marker``
    file naming ``backed_up_compose`` when that compose file is backed up (the compose file the
    ``.prev`` backups belong to), then each file of ``backups`` copied to ``<name>.prev`` (.env
    stays 0600), then each staged file copied into place. .env is marked secret, so that no diff
    shows it."""
    out = []
    if marker and backed_up_compose in backups:
        out.append({"path": marker, "mode": "0644", "content": f"{backed_up_compose}\n"})
    out += [{"path": f"{installed_dir}/{name}.prev", "src": f"{installed_dir}/{name}",
             "mode": "0600" if name == ".env" else "0644", "secret": name == ".env"} for name in backups]
    out += [{"name": f["name"], "path": f"{installed_dir}/{f['name']}", "src": f"{staging_dir}/{staged_name(f['name'])}",
             "mode": f["mode"], "secret": bool(f.get("secret"))} for f in files]
    return out


def _reference_spellings(image: str) -> set[str]:
    """How Docker may spell ``image`` back: as given, with the implicit ``:latest`` tag, and
    with the implicit ``docker.io/`` (``docker.io/library/`` for an official image) prefix."""
    names = {image}
    last = image.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        names.add(image + ":latest")
    first = image.split("/", 1)[0]
    if "/" not in image or (not any(c in first for c in ".:") and first != "localhost"):
        prefix = "docker.io/" if "/" in image else "docker.io/library/"
        names |= {prefix + n for n in names}
    return names


def missing_images(images: Sequence[str], stderr_lines: Sequence[str]) -> list[str]:
    """The images of ``images`` that one ``docker image inspect`` of them all reported missing
    ("No such image: <reference>" per missing one, the reference as given or as the daemon
    normalised it), in the order of ``images``."""
    reported = {line.split("No such image:", 1)[1].strip() for line in stderr_lines if "No such image:" in line}
    return [image for image in images if _reference_spellings(image) & reported]


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
