"""Lookup ``libra_catalog``: a catalog of this project (catalog/<name>.yml) as data.

    lookup('libra_catalog', 'engine')      # catalog/engine.yml

The playbooks own this lookup and hand what the roles need to their inputs (playbooks/vars/wiring.yml);
no role reads the catalog folder itself.
"""
from __future__ import annotations

import os
import re

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: libra_catalog
short_description: read catalog/<name>.yml of this project
options:
  _terms:
    description: Catalog names (engine, gpus, tiers, models).
    required: true
"""

CATALOG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "catalog")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        out = []
        for name in terms:
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name):
                raise AnsibleLookupError(f"libra_catalog: {name!r} is not a catalog name")
            path = os.path.join(CATALOG, name + ".yml")
            if not os.path.isfile(path):
                known = sorted(f[:-4] for f in os.listdir(CATALOG) if f.endswith(".yml"))
                raise AnsibleLookupError(f"libra_catalog: no catalog {name!r}; known: {', '.join(known)}")
            with open(path, encoding="utf-8") as fh:
                out.append(yaml.safe_load(fh))
        return out
