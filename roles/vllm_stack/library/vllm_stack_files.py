#!/usr/bin/python
"""Directories and files of the stack in one module run: the role's file work in one round trip.

Rendering four templates and creating eight directories took two dozen module runs per host
(``template`` alone runs ``stat`` and ``copy``: a new Python process on the host each time). This
module takes the directories and the files' contents (rendered on the controller by the
``template`` lookup) or their sources on the host, and brings them all into place in one run, in
the order given, with check mode and ``--diff``.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_stack_files
short_description: Directories and files of the vLLM stack in one module run
description:
  - Creates the directories, then writes each file from O(files) and O(secret_files) whose
    content, owner, group or mode differs, in the order given. A file is written to a temporary
    file beside it and renamed into place, so a reader never sees half a file.
  - Entries of O(files) take their content from O(files[].content), or copy it from
    O(files[].src), a file on the host.
  - Reports, per file, whether it changed, the SHA-1 of its content and, when
    O(files[].compare) is given, whether that other file exists and its SHA-1.
  - An entry's C(name) is a label returned as is; C(secret=true) keeps its content out of
    C(--diff) (for a copy from C(src); contents given inline go to O(secret_files)).
options:
  directories:
    description: Directories to create, each a dict with C(path) and C(mode).
    type: list
    elements: dict
    default: []
  files:
    description: Files whose content may be shown by C(--diff).
    type: list
    elements: dict
    default: []
  secret_files:
    description: Files whose content is never logged nor shown by C(--diff) (C(content) is no_log).
    type: list
    elements: dict
    default: []
  owner:
    description: Owner of every directory and file; unset, new ones belong to the user running the module and existing ones keep theirs.
    type: str
  group:
    description: Group of every directory and file; unset, as for O(owner).
    type: str
  look_for:
    description: Paths only looked at (before any change); those that exist are returned in C(found).
    type: list
    elements: path
    default: []
author: libra
"""

EXAMPLES = r"""
- name: Stage the stack files
  vllm_stack_files:
    directories: [{path: /opt/libra/.staging, mode: "0700"}]
    files:
      - {path: /opt/libra/.staging/docker-compose.vllm-lite.yml, mode: "0644", content: "...",
         compare: /opt/libra/docker-compose.vllm-lite.yml}
    secret_files:
      - {path: /opt/libra/.staging/.env, mode: "0600", content: "..."}
"""

RETURN = r"""
files:
  description: One entry per file, O(files) first then O(secret_files), in the order given.
  type: list
  elements: dict
  returned: always
  contains:
    path: {description: The file., type: str}
    name: {description: The entry's C(name)., type: str}
    changed: {description: Whether it was (or in check mode would be) written or its attributes set., type: bool}
    checksum: {description: SHA-1 of its new content., type: str}
    compare: {description: "C(exists) and C(checksum) of O(files[].compare), when given.", type: dict}
found:
  description: The paths of O(look_for) that existed when the module started, in the order given.
  type: list
  elements: str
  returned: always
"""

import hashlib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

_FILE_SPEC = {
    "path": {"type": "path", "required": True},
    "mode": {"type": "str", "required": True},
    "content": {"type": "str"},
    "src": {"type": "path"},
    "compare": {"type": "path"},
    "name": {"type": "str"},
    "secret": {"type": "bool", "default": False},
}
_SECRET_SPEC = dict(_FILE_SPEC, content={"type": "str", "no_log": True})


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # the checksum stat and template report


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _ids(module: AnsibleModule) -> tuple[int, int]:
    """uid and gid of O(owner) and O(group); -1 (leave as is, os.chown's convention) when unset."""
    import grp
    import pwd

    owner, group = module.params["owner"], module.params["group"]
    try:
        uid = -1 if owner is None else int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
        gid = -1 if group is None else int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as exc:
        module.fail_json(msg=f"no such owner or group on the host: {exc}")
    return uid, gid


def _attrs_differ(path: str, mode: int, uid: int, gid: int) -> bool:
    """Whether an existing path's mode, owner or group differ (a missing path does not; an
    owner or group of -1 is not compared)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_mode & 0o7777) != mode or uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid)


def _mode(module: AnsibleModule, entry: dict) -> int:
    try:
        return int(str(entry["mode"]), 8)
    except ValueError:
        module.fail_json(msg=f"mode of {entry['path']} is not an octal number: {entry['mode']!r}")
    raise AssertionError  # fail_json exits


def _directory(module: AnsibleModule, entry: dict, uid: int, gid: int) -> bool:
    path, mode = entry["path"], _mode(module, entry)
    if os.path.isdir(path):
        if not _attrs_differ(path, mode, uid, gid):
            return False
    elif os.path.lexists(path):
        module.fail_json(msg=f"{path} exists and is not a directory")
    if module.check_mode:
        return True
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return True


def _write(path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".libra-")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _file(module: AnsibleModule, entry: dict, secret: bool, uid: int, gid: int, diffs: list) -> dict:
    path, mode = entry["path"], _mode(module, entry)
    if (entry.get("content") is None) == (entry.get("src") is None):
        module.fail_json(msg=f"{path}: give exactly one of content and src")
    if entry.get("content") is not None:
        data = entry["content"].encode("utf-8")
    else:
        data = _read(entry["src"])
        if data is None:
            module.fail_json(msg=f"{path}: its source {entry['src']} does not exist on the host")
    old = _read(path)
    changed = old != data or _attrs_differ(path, mode, uid, gid)
    result = {"path": path, "name": entry.get("name"), "changed": changed, "checksum": _sha1(data)}
    if entry.get("compare"):
        other = _read(entry["compare"])
        result["compare"] = {"exists": other is not None, "checksum": _sha1(other) if other is not None else ""}
    if changed and old != data and module._diff and not (secret or entry.get("secret")):
        diffs.append({"before_header": path, "after_header": path,
                      "before": (old or b"").decode("utf-8", "replace"), "after": data.decode("utf-8", "replace")})
    if changed and not module.check_mode:
        if old == data:
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        else:
            _write(path, data, mode, uid, gid)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": {"path": {"type": "path", "required": True},
                                        "mode": {"type": "str", "required": True}}},
            "files": {"type": "list", "elements": "dict", "default": [], "options": _FILE_SPEC},
            "secret_files": {"type": "list", "elements": "dict", "default": [], "options": _SECRET_SPEC},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "look_for": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    found = [path for path in module.params["look_for"] if os.path.lexists(path)]
    uid, gid = _ids(module)
    changed = False
    for entry in module.params["directories"]:
        changed = _directory(module, entry, uid, gid) or changed
    diffs: list = []
    results = [_file(module, e, False, uid, gid, diffs) for e in module.params["files"]]
    results += [_file(module, e, True, uid, gid, diffs) for e in module.params["secret_files"]]
    changed = changed or any(r["changed"] for r in results)
    out = {"changed": changed, "files": results, "found": found}
    if diffs:
        out["diff"] = diffs
    module.exit_json(**out)


if __name__ == "__main__":
    main()
