"""Lookup ``rollout_tree_digest``: sha256 of the files below the given paths (on the controller).

    lookup('rollout_tree_digest', path1, path2, ...)

A lookup, not a filter: it reads the controller's filesystem. The digest itself is
``libra_roles.rollout.tree_digest`` (tests/roles/test_libra_roles.py).
"""
from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: rollout_tree_digest
short_description: sha256 over every file below the given paths
description:
  - Relative names and contents, in sorted order; byte-code caches are left out.
options:
  _terms:
    description: Files or directories on the controller.
    required: true
"""

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from libra_roles.rollout import tree_digest  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        paths = []
        for term in terms:
            paths.extend(term if isinstance(term, (list, tuple)) else [term])
        try:
            return [tree_digest([str(p) for p in paths])]
        except OSError as err:
            raise AnsibleLookupError(str(err)) from err
