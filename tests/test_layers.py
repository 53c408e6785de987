"""The package's layers (DESIGN.md §5, docs/how-it-works.md): every import, those
inside functions and under ``TYPE_CHECKING`` included, goes to the same layer or a
lower one. ``python ../shared/tools/import_cycles.py django_ai_fields`` checks cycles;
this checks direction."""

from __future__ import annotations

import ast
from pathlib import Path

import django_ai_fields

PACKAGE = Path(django_ai_fields.__file__).parent

# Bottom first. A module's layer is that of the longest prefix listed here.
LAYERS: list[tuple[str, ...]] = [
    (
        "codes",
        "conf",
        "signals",
        "crypto",
        "encrypted",
        "queues",
        "privacy",
        "databases",
        "shared_state",
        "row_keys",
        "rq_worker",
    ),
    ("providers",),  # the SDK adapters know no models: providers know nothing of jobs
    ("models",),
    (
        "money",
        "tenants",
        "observability.metrics",
        "observability.logs",
        "observability.tracing",
        "observability.calls",
        "observability.analytics",
        "observability.rollup_reads",
    ),
    ("dispatch",),
    ("declare",),  # below the public entry points built on it
    ("fields", "functions"),
    ("intake",),
    ("generation",),  # field generation: calls the change tracker
    ("calling",),
    ("jobs",),
    ("values",),  # review, staleness, history: read and steer the values the jobs wrote
    (
        "api",
        "status",
        "admin",
        "http",
        "urls",
        "templatetags",
        "management",
        "observability.health",
        "deployment_checks",
    ),
    ("apps",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of a module (None: a package face, which only re-exports)."""
    best: tuple[int, int] | None = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank)
    return None if best is None else best[1]


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join([*anchor, node.module] if node.module else anchor)
            found += [(node.lineno, f"{base}.{alias.name}".strip(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "django_ai_fields."
        ):
            base = node.module.removeprefix("django_ai_fields.")  # type: ignore[union-attr]
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_every_module_has_a_layer():
    unplaced = [
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
        and path.name != "__init__.py"
        and layer_of(module_name(path)) is None
    ]
    assert unplaced == []


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if "migrations" in path.parts or not module:
            continue
        own = layer_of(module)
        for line, target in imported_modules(path, module):
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} {module} -> {target}")
    assert upward == []
