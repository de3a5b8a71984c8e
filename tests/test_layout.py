"""The wings of ``core`` import one way only: stream -> analysis -> style, store -> the root modules.

Every import statement of every module is read (those inside functions too), so a lazy import
that runs upward fails here as well.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CORE = REPO / "core"
# What each part of core may import besides itself and the root modules (faces, models, images, settings).
ALLOWED = {
    "root": set(),
    "style": set(),
    "store": set(),
    "analysis": {"style", "store"},
    "stream": {"analysis", "style", "store"},
    "cli": {"analysis", "stream", "style", "store"},
}
WINGS = {"analysis", "stream", "style", "store"}


def part_of(module: str) -> str:
    """'core.analysis.detect' -> 'analysis'; 'core.cli' / 'core.__main__' -> 'cli'; 'core.faces' -> 'root'."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in WINGS:
        return parts[1]
    return "cli" if len(parts) > 1 and parts[1] in {"cli", "__main__"} else "root"


def core_imports(path: Path) -> list[str]:
    """The ``core...`` modules that ``path`` imports, absolute names."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from core import sface` imports core.sface; `from core.faces import Box` imports core.faces
            names += [f"{node.module}.{alias.name}" for alias in node.names] if node.module in {"core", *(f"core.{w}" for w in WINGS)} else [node.module]
    return [name for name in names if name == "core" or name.startswith("core.")]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(CORE.rglob("*.py"))


def test_every_module_of_core_lives_in_a_wing_or_is_shared() -> None:
    root = {path.stem for path in CORE.glob("*.py")}
    assert root == {"__init__", "__main__", "cli", "faces", "images", "models", "settings"}
    assert {path.name for path in CORE.iterdir() if path.is_dir() and path.name != "__pycache__"} == WINGS


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(REPO)))
def test_no_import_runs_upward(path: Path) -> None:
    own = part_of(module_name(path))
    upward = [
        name
        for name in core_imports(path)
        if name != "core" and part_of(name) not in {own, "root"} | ALLOWED[own]
    ]
    assert not upward, f"{module_name(path)} ({own}) imports {upward}"


def test_the_layout_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from core.stream.pipeline import FramePipeline\n")
    assert [part_of(name) for name in core_imports(module)] == ["stream"]
    assert "stream" not in ALLOWED["analysis"]
