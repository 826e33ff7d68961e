"""The layers stay apart: what each package of the common library may import.

engine <- contracts <- domain <- adapters <- LLM runtime <- services, with the pure LLM spec
(`crowdsft.llm`) beside the domain: the engine imports nothing of the project, the domain no
adapters, services or LLM runtime, the adapters no services. Every import in a file is checked,
function-level ones included.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "shared" / "crowdsft"
HEAVY = {"torch", "transformers", "peft", "ray", "sentence_transformers", "faststream",
         "aiokafka", "pymongo", "fastapi", "uvicorn", "httpx"}  # fmt: skip
RUNTIME = "crowdsft.llm_runtime"

# package -> (allowed project imports, forbidden third-party tops)
RULES: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "engine": (("crowdsft.engine",), HEAVY | {"pydantic"}),
    # The AsyncAPI export builds its document with FastStream and reads the package version.
    "contracts": (("crowdsft.contracts", "=crowdsft"), HEAVY - {"faststream"}),
    "domain": (
        ("crowdsft.domain", "crowdsft.engine", "crowdsft.contracts", "crowdsft.llm.config",
         "crowdsft.feedback", "crowdsft.engine_data"),
        HEAVY,
    ),
    "llm/config.py": (("crowdsft.llm.config",), HEAVY),
    "llm/design.py": (("crowdsft.llm.design",), HEAVY),
}  # fmt: skip
NOT_FROM_ADAPTERS = ("services", RUNTIME, "crowdsft.cli", "crowdsft.reporting")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(part: str) -> list[Path]:
    target = LIB / part
    return [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    """`p` allows p and its submodules; `=p` allows p alone."""
    return any(
        name == p.removeprefix("=") or (not p.startswith("=") and name.startswith(p + "."))
        for p in prefixes
    )


@pytest.mark.parametrize("part", sorted(RULES))
def test_each_lower_layer_imports_only_what_is_below_it(part: str) -> None:
    project, heavy = RULES[part]
    bad = []
    for path in files(part):
        for name in imports(path):
            top = name.split(".")[0]
            if top in ("crowdsft", "services") and not allowed(name, project):
                bad.append(f"{path.relative_to(LIB)}: {name}")
            elif top in heavy:
                bad.append(f"{path.relative_to(LIB)}: {name} (a heavy or I/O library)")
    assert not bad, bad


def test_the_engine_imports_only_numpy_scipy_the_stdlib_without_io_and_itself() -> None:
    io = {"io", "os", "pathlib", "csv", "json", "shutil", "socket", "subprocess"}
    bad = [
        f"{path.relative_to(LIB)}: {name}"
        for path in files("engine")
        for name in imports(path)
        if (top := name.split(".")[0]) in io
        or (top not in {"numpy", "scipy", "crowdsft"} and top not in sys.stdlib_module_names)
    ]
    assert not bad, bad


def test_adapters_import_no_services_no_llm_runtime_and_no_entry_points() -> None:
    bad = [
        f"{path.relative_to(LIB)}: {name}"
        for path in files("adapters")
        for name in imports(path)
        if allowed(name, NOT_FROM_ADAPTERS)
    ]
    assert not bad, bad


def test_nothing_in_the_common_library_imports_a_service() -> None:
    bad = [
        f"{path.relative_to(LIB)}: {name}"
        for path in files(".")
        for name in imports(path)
        if allowed(name, ("services",))
    ]
    assert not bad, bad


def test_the_domain_loads_without_the_heavy_libraries() -> None:
    """Importing the domain (and every built-in backend) pulls in no torch, Kafka or MongoDB."""
    import subprocess

    code = (
        "import sys, crowdsft.domain, crowdsft.domain.ports, crowdsft.domain.steps; "
        f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
