"""Turn operators' published CustomResourceDefinitions into the JSON Schemas the manifest test
validates against: one file per kind and version, with descriptions dropped (they are most of
each CRD's size and change nothing that validates).

    python infra/k8s/vendor_schemas.py CRD.yaml [...] --out infra/k8s/schemas/<operator>

Sources, versions and licences: infra/k8s/schemas/SOURCES.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def schemas_of(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`Kind.version` -> that version's openAPIV3Schema, for every served version."""
    kind = crd["spec"]["names"]["kind"]
    return {
        f"{kind}.{version['name']}": without_descriptions(version["schema"]["openAPIV3Schema"])
        for version in crd["spec"]["versions"]
        if version.get("served", True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crds", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.crds:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas_of(crd).items():
                target = args.out / f"{name}.json"
                target.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")))
                print(f"{target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
