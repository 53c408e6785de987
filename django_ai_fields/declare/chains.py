"""Chained AI fields: an AI field whose prompt (or ``trigger_fields``) names another
AI field of its model depends on it, and is generated after that one is written.

A cycle among a model's AI fields would regenerate forever: it is a system check
error (checks.py), and tracking leaves the fields of a cycle alone.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .prompts import PromptSyntaxError

# AI fields are recognised by their ``is_ai_field`` flag, so this module stays below
# fields.py (whose check() reaches checks.py, which imports this one).
AIField = Any


def ai_fields(model: type[models.Model]) -> list[AIField]:
    return [f for f in model._meta.concrete_fields if getattr(f, "is_ai_field", False)]


def sources(field: AIField) -> list[str]:
    """Names of the AI fields ``field`` depends on (its AI triggers)."""
    try:
        triggers = field.trigger_field_objects()
    except (PromptSyntaxError, FieldDoesNotExist):
        return []
    return [f.name for f in triggers if getattr(f, "is_ai_field", False)]


def dependency_graph(model: type[models.Model]) -> dict[str, list[str]]:
    """AI field name -> the AI fields it depends on, for every AI field of ``model``."""
    return {f.name: sources(f) for f in ai_fields(model)}


def find_cycle(field: AIField) -> list[str] | None:
    """A cycle through ``field`` as names ``[field, ..., field]``, or None."""
    graph = dependency_graph(field.model)
    start = field.name
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        for source in graph.get(name, []):
            if source == start:
                return [*path, start]
            if source not in seen:
                seen.add(source)
                stack.append((source, [*path, source]))
    return None


def in_cycle(field: AIField) -> bool:
    return find_cycle(field) is not None


def chains(model: type[models.Model]) -> list[str]:
    """Each AI field that others depend on, with what one change of it regenerates,
    in order: ``"summary -> headline -> tweet"`` (for ai_status and the admin)."""
    graph = dependency_graph(model)
    dependents: dict[str, list[str]] = {name: [] for name in graph}
    for name, names in graph.items():
        for source in names:
            dependents.setdefault(source, []).append(name)
    lines = []
    for root in graph:
        if graph[root] or not dependents.get(root):
            continue  # only chains that start at a field fed by plain fields
        order, frontier = [root], [root]
        while frontier:
            frontier = [d for name in frontier for d in dependents.get(name, []) if d not in order]
            order += list(dict.fromkeys(frontier))
        lines.append(" -> ".join(order))
    return lines
