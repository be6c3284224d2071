"""The docs say how the code is laid out; these tests hold the code to them.

docs/ARCHITECTURE.md states the layers in a ```layers block (top first). Every import in `src`,
function-level imports included, must go to a lower layer; `synth` is imported by `cli` alone.
docs/DESIGN.md is the contract the code cites: every `docs/DESIGN.md "Section"` it names exists.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "taxgate"


def layers(architecture: Path = ROOT / "docs" / "ARCHITECTURE.md") -> dict[str, int]:
    """Each package's layer (0 at the bottom) from the document's ```layers block."""
    block = re.search(r"```layers\n(.*?)```", architecture.read_text(encoding="utf-8"), re.S)
    assert block, "docs/ARCHITECTURE.md has no ```layers block"
    rows = [line.split() for line in block.group(1).strip().splitlines()]
    return {package: len(rows) - 1 - i for i, row in enumerate(rows) for package in row}


def _package(path: Path, src: Path) -> str:
    """The top-level package (or module) a file belongs to: src/taxgate/rules/items.py -> rules."""
    first = path.relative_to(src).parts[0]
    return first.removesuffix(".py")


def imports(src: Path = SRC) -> list[tuple[str, str, str]]:
    """(importing package, imported package, where) for every import of one taxgate package by
    another, module-level or inside a function."""
    found = []
    for path in sorted(src.rglob("*.py")):
        package = _package(path, src)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = (
                    [f"taxgate.{a.name}" for a in node.names]
                    if node.module == "taxgate"
                    else [node.module]
                )
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "taxgate" and len(parts) > 1 and parts[1] != package:
                    where = f"{path.relative_to(src.parent)}:{node.lineno}"
                    found.append((package, parts[1], where))
    return found


def violations(src: Path = SRC, layer_of: dict[str, int] | None = None) -> list[str]:
    """Every import that runs against the layering, as one line each."""
    layer_of = layers() if layer_of is None else layer_of
    out = []
    for importer, imported, where in imports(src):
        if importer in ("__init__", "__main__"):  # `python -m taxgate` and the entry point: the CLI
            continue
        if importer not in layer_of or imported not in layer_of:
            missing = importer if importer not in layer_of else imported
            out.append(f"{where}: {missing} is in no layer of docs/ARCHITECTURE.md")
        elif layer_of[imported] >= layer_of[importer]:
            out.append(f"{where}: {importer} imports {imported}, which is not below it")
        elif imported == "synth" and importer != "cli":
            out.append(f"{where}: {importer} imports synth (test data): only the CLI may")
    return out


def test_every_import_in_src_goes_down_the_layers():
    assert violations() == []


def test_every_package_is_in_a_layer_and_every_layer_names_a_package():
    packages = {_package(p, SRC) for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()}
    packages -= {"__init__", "__main__", "__pycache__"}
    assert set(layers()) == packages


def test_an_upstream_import_is_caught(tmp_path):
    """The check can fail: the ledger importing the release workflow (above it), a decision
    importing the test-data generator, and a stage importing one of its own layer are reported,
    each by file and line."""
    src = tmp_path / "taxgate"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(src) == []
    log = src / "ledger" / "log.py"
    log.write_text(log.read_text(encoding="utf-8") + "\nfrom taxgate.release import Release\n")
    decide = src / "decide" / "__init__.py"
    decide.write_text(
        decide.read_text(encoding="utf-8")
        + "\n\ndef _world():\n    from taxgate.synth import generate_master\n"
    )
    rules = src / "rules" / "items.py"
    rules.write_text(rules.read_text(encoding="utf-8") + "\nimport taxgate.identify\n")
    found = violations(src)
    assert len(found) == 3, found
    assert any(
        line.startswith("taxgate/ledger/log.py:") and "ledger imports release" in line
        for line in found
    )
    assert any("decide imports synth" in line for line in found)
    assert any(
        line.startswith("taxgate/rules/items.py:") and "rules imports identify" in line
        for line in found
    )


def test_every_design_section_the_code_cites_exists():
    design = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    sections = [h.strip() for h in re.findall(r"^#+ (.+)$", design, re.M)]
    cited = []
    for path in [*SRC.rglob("*.py"), *SRC.rglob("*.toml"), *(ROOT / "tests").rglob("*.yaml")]:
        text = re.sub(
            r"\s*\n\s*(#\s*)?", " ", path.read_text(encoding="utf-8")
        )  # across line breaks
        cited += [(path.name, name) for name in re.findall(r'DESIGN\.md "([^"]+)"', text)]
    assert len(cited) >= 15  # the code cites the contract throughout; none of it silently dropped
    missing = [(f, name) for f, name in cited if not any(s.startswith(name) for s in sections)]
    assert missing == []
    assert "../shared/DESIGN.md" not in (ROOT / "README.md").read_text(encoding="utf-8")


# Folders of tests that are not a package's: the design's conformance cases, run as data.
NOT_A_PACKAGE = {"conformance"}
# Tests of the project as a whole, at the top: this file and the user's-files guard.
PROJECT_WIDE = {"test_architecture.py", "test_user_files.py"}


def test_the_test_tree_mirrors_the_package_tree():
    """A package's tests are in the folder of its name (tests/ledger/ for taxgate.ledger), so a
    reader finds them where the code is; only project-wide tests sit at the top."""
    tests = ROOT / "tests"
    packages = {_package(p, SRC) for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()}
    misplaced = []
    for path in sorted(tests.rglob("test_*.py")):
        parts = path.relative_to(tests).parts
        if len(parts) == 1:
            ok = parts[0] in PROJECT_WIDE
        else:
            ok = len(parts) == 2 and (parts[0] in packages or parts[0] in NOT_A_PACKAGE)
        if not ok:
            misplaced.append(str(path.relative_to(ROOT)))
    assert misplaced == []


def test_no_test_module_imports_another():
    """Helpers more than one test module needs live in tests/support.py (seeing.py for what a person
    sees, dying.py for a kill on cue); a test module imported by another runs its tests twice and
    ties the two folders together. conftest.py holds fixtures only and is never imported."""
    tests = ROOT / "tests"
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                first = name.split(".")[0]
                if first.startswith("test_") or first in ("conftest", "tests"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {name}")
    assert found == []
