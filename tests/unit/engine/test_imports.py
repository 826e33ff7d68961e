"""The engine stays pure: numpy, scipy, the standard library and itself, nothing else."""

import ast
import sys
from pathlib import Path

import crowdsft.engine

ENGINE = Path(crowdsft.engine.__file__).parent
ALLOWED = {"numpy", "scipy", "crowdsft"}
FORBIDDEN_STDLIB = {"io", "os", "pathlib", "csv", "json", "shutil", "socket", "subprocess"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_imports_only_numpy_scipy_stdlib_and_itself() -> None:
    bad: list[str] = []
    for path in ENGINE.rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "crowdsft" and not name.startswith("crowdsft.engine"):
                bad.append(f"{path.name}: {name}")
            elif top in FORBIDDEN_STDLIB:
                bad.append(f"{path.name}: {name} (I/O)")
            elif top not in ALLOWED and top not in sys.stdlib_module_names:
                bad.append(f"{path.name}: {name}")
    assert not bad, bad
