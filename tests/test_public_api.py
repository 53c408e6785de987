"""Issue 22: the package states a small public surface. Each public module of
docs/reference.md's first table has an ``__all__`` listing exactly the names that
table gives it, and each of them imports."""

from __future__ import annotations

import importlib
import re

import pytest

from tests.test_docs import DOCS

ROW = re.compile(r"^\| `(django_ai_fields[\w.]*)` \| (.+) \|$")
NAME = re.compile(r"`([A-Za-z_]\w*)")
# What a row says in words rather than names.
IN_WORDS = {
    "django_ai_fields.providers.base": {
        "Provider",
        "CompletionRequest",
        "CompletionResponse",
        "ProviderError",
    },
}
NOT_MODULES_OF_NAMES = {"django_ai_fields.urls"}  # its row names the urlconf itself
# Module paths in a row's words, not names it exports.
ASIDE = re.compile(r"\((defined in|re-exported from) `[^`]*`\)")


def documented() -> dict[str, set[str]]:
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    table = text.split("\n\n", 2)[2].split("\n\n", 1)[0]  # the first table
    rows: dict[str, set[str]] = {}
    for line in table.splitlines():
        match = ROW.match(line)
        if match and match.group(1) not in NOT_MODULES_OF_NAMES:
            cell = ASIDE.sub("", match.group(2))
            names = {name for name in NAME.findall(cell) if "." not in name}
            rows[match.group(1)] = names | IN_WORDS.get(match.group(1), set())
    return rows


def test_the_reference_lists_the_public_modules():
    assert {"django_ai_fields.fields", "django_ai_fields.api", "django_ai_fields.models"} <= set(
        documented()
    )


@pytest.mark.parametrize(("module_name", "names"), sorted(documented().items()))
def test_each_public_module_exports_exactly_what_the_reference_lists(module_name, names):
    module = importlib.import_module(module_name)
    assert sorted(getattr(module, "__all__", [])) == sorted(names)
    for name in names:
        assert hasattr(module, name), f"{module_name}.{name}"
