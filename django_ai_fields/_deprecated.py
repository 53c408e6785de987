"""Import paths of the flat layout (0.1), kept working for one release.

The modules moved into folders by part (see docs/changelog.md, "Moved"). Instead of
one shim file per old module, a finder on ``sys.meta_path`` (installed by the
package's ``__init__``) answers an import of an old path with a stand-in module
whose attributes come from the new homes, with a ``DeprecationWarning`` naming the
new path. Nothing here imports the rest of the package until such an attribute is
used.

The RQ entry points stored in users' Redis by earlier releases
(``django_ai_fields.engine.run_job`` ...) resolve the same way, without a warning:
they are data written by the app itself, not code a user can change.

relayout: skip-file (this module names the old paths on purpose)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

REMOVED_IN = "0.3"

# Old module -> the modules its names live in now (first match wins).
MOVED: dict[str, tuple[str, ...]] = {
    "django_ai_fields.prompts": ("django_ai_fields.declare.prompts",),
    "django_ai_fields.tokens": ("django_ai_fields.declare.tokens",),
    "django_ai_fields.outputs": ("django_ai_fields.declare.outputs",),
    "django_ai_fields.checks": ("django_ai_fields.declare.checks",),
    "django_ai_fields.field_function": ("django_ai_fields.declare.generation",),
    "django_ai_fields.tracking": ("django_ai_fields.intake.tracking",),
    "django_ai_fields.outbox": ("django_ai_fields.intake.outbox", "django_ai_fields.queues"),
    "django_ai_fields.calls": ("django_ai_fields.calling.pipeline",),
    "django_ai_fields.repair": ("django_ai_fields.calling.answer",),
    "django_ai_fields.routing": (
        "django_ai_fields.calling.routing",
        "django_ai_fields.jobs.lifecycle",
    ),
    "django_ai_fields.breaker": ("django_ai_fields.calling.breaker",),
    "django_ai_fields.ratelimit": ("django_ai_fields.calling.ratelimit",),
    "django_ai_fields.moderation": ("django_ai_fields.calling.moderation",),
    "django_ai_fields.streaming": ("django_ai_fields.calling.streaming",),
    "django_ai_fields.result_cache": ("django_ai_fields.calling.result_cache",),
    "django_ai_fields.pricing": ("django_ai_fields.money.pricing",),
    "django_ai_fields.quotas": ("django_ai_fields.money.quotas",),
    "django_ai_fields.policies": ("django_ai_fields.tenants.policies",),
    "django_ai_fields.permissions": ("django_ai_fields.tenants.permissions",),
    "django_ai_fields.concurrency": ("django_ai_fields.tenants.concurrency",),
    "django_ai_fields.engine": (
        "django_ai_fields.jobs.lifecycle",
        "django_ai_fields.jobs.engine",
        "django_ai_fields.jobs.tasks",
    ),
    "django_ai_fields.chunks": (
        "django_ai_fields.jobs.chunks",
        "django_ai_fields.jobs.tasks",
        "django_ai_fields.intake.outbox",
        "django_ai_fields.providers.loop",
    ),
    "django_ai_fields.batches": ("django_ai_fields.jobs.batches", "django_ai_fields.jobs.tasks"),
    "django_ai_fields.sweep": ("django_ai_fields.jobs.sweep", "django_ai_fields.jobs.tasks"),
    "django_ai_fields.recovery": (
        "django_ai_fields.jobs.recovery",
        "django_ai_fields.jobs.lifecycle",
    ),
    "django_ai_fields.schedules": ("django_ai_fields.jobs.schedules",),
    "django_ai_fields.job_actions": ("django_ai_fields.jobs.actions",),
    "django_ai_fields.steps": ("django_ai_fields.jobs.steps",),
    "django_ai_fields.health": ("django_ai_fields.observability.health",),
    "django_ai_fields.analytics": ("django_ai_fields.observability.analytics",),
    "django_ai_fields.admin_forms": ("django_ai_fields.admin.forms",),
    "django_ai_fields.admin_mixins": ("django_ai_fields.admin.mixins",),
    "django_ai_fields.resources": ("django_ai_fields.admin.resources",),
    "django_ai_fields.jsonapi": ("django_ai_fields.http.jsonapi",),
    "django_ai_fields.views": ("django_ai_fields.http.views",),
}

# Names that left a module which still exists: module -> {name: new module}.
MOVED_NAMES: dict[str, dict[str, str]] = {
    "django_ai_fields.providers": {
        "resolve_credentials": "django_ai_fields.tenants.credentials",
        "get_provider": "django_ai_fields.tenants.credentials",
    },
}

# RQ entry points stored in Redis by 0.1 (resolved silently).
TASKS = {
    "django_ai_fields.engine.run_job",
    "django_ai_fields.chunks.run_chunk",
    "django_ai_fields.sweep.periodic_sweep",
    "django_ai_fields.batches.periodic_poll",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; the old path goes away in django-ai-fields {REMOVED_IN}.",
        DeprecationWarning,
        stacklevel=4,  # _warn <- _lookup <- __getattr__ <- the importing line
    )


def _lookup(old_module: str, name: str, homes: Sequence[str]) -> Any:
    for home in homes:
        module = importlib.import_module(home)
        if hasattr(module, name):
            value = getattr(module, name)
            if f"{old_module}.{name}" not in TASKS:
                defined_in = getattr(value, "__module__", None)
                if not (isinstance(defined_in, str) and defined_in.startswith("django_ai_fields.")):
                    defined_in = home  # a constant: named after the module holding it
                _warn(f"{old_module}.{name}", f"{defined_in}.{name}")
            return value
    raise AttributeError(f"module {old_module!r} has no attribute {name!r}")


class _OldModule(types.ModuleType):
    """The stand-in for an old module: every attribute read goes to the new homes."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _lookup(self.__name__, name, MOVED[self.__name__])

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for home in MOVED[self.__name__]:
            names.update(n for n in dir(importlib.import_module(home)) if not n.startswith("_"))
        return sorted(names)


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _OldModule(spec.name)
        module.__doc__ = f"Deprecated alias of {', '.join(MOVED[spec.name])}."
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the stand-in resolves its attributes on use."""


def install() -> None:
    """Answer imports of the old paths (once per process)."""
    if not any(isinstance(finder, _OldPathFinder) for finder in sys.meta_path):
        sys.meta_path.append(_OldPathFinder())


def module_getattr(module_name: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that left ``module_name`` (MOVED_NAMES)."""

    def __getattr__(name: str) -> Any:
        home = MOVED_NAMES.get(module_name, {}).get(name)
        if home is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        return _lookup(module_name, name, [home])

    return __getattr__
