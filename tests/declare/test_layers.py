"""Issue 22: the declaration layer imports nothing above it, counting imports inside
functions and under ``if TYPE_CHECKING:`` (which the import-cycle tool skips)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "django_ai_fields"

DECLARATION = ("fields", "functions", "declare")
# What sits above the declaration layer (docs/reference.md, "Layout").
ABOVE_DECLARATION = (
    "intake",
    "generation",
    "observability",
    "calling",
    "jobs",
    "api",
    "status",
    "admin",
    "http",
    "urls",
    "templatetags",
    "management",
)
ABOVE_GENERATION = ABOVE_DECLARATION[2:]


def part_of(module: str) -> str:
    """``django_ai_fields.declare.prompts`` -> ``declare``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every package module ``path`` imports, wherever the import statement is."""
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("django_ai_fields.")}


def modules_of(*parts: str) -> list[Path]:
    paths = []
    for part in parts:
        folder = PACKAGE / part
        paths += sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{part}.py"]
    return paths


def imports_into(paths: list[Path], parts: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in paths
        for name in imported_modules(path)
        if part_of(name) in parts
    )


def test_the_parser_sees_an_import_under_type_checking_and_inside_a_function() -> None:
    """Control for the tests below: both kinds of import are counted."""
    assert "django_ai_fields.privacy.redaction.Masking" in imported_modules(
        PACKAGE / "functions.py"
    )  # under TYPE_CHECKING
    assert "django_ai_fields.declare.checks.check_field" in imported_modules(
        PACKAGE / "fields.py"
    )  # inside check()


def test_the_declaration_layer_imports_nothing_above_it() -> None:
    assert imports_into(modules_of(*DECLARATION), ABOVE_DECLARATION) == []


def test_declare_modules_import_neither_fields_nor_functions() -> None:
    """fields.py and functions.py are built on declare/, never the other way round."""
    assert imports_into(modules_of("declare"), ("fields", "functions")) == []


def test_intake_imports_nothing_above_it() -> None:
    """Field generation calls the change tracker, never the other way round."""
    assert imports_into(modules_of("intake"), ABOVE_DECLARATION[1:]) == []


def test_field_generation_imports_nothing_of_calling_jobs_or_surfaces() -> None:
    assert imports_into(modules_of("generation"), ABOVE_GENERATION) == []
