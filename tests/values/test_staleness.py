"""Staleness (issue 21, point 2): every written value knows the definition of its field
that produced it; a changed prompt (or model...) makes the values written before stale,
and ``ai_regenerate --stale`` regenerates exactly those."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_ai_fields import api
from django_ai_fields.declare.definition import definition_hash
from django_ai_fields.fields import AIFieldMixin, get_ai_field
from django_ai_fields.models import AIJob, Status
from tests.fresh_project import FreshProject
from tests.testapp.models import Article, Product, Restaurant, Voucher

pytestmark = pytest.mark.django_db(transaction=True)

SHOP_MODELS = """\
from django.db import models

from django_ai_fields.fields import AIGeneratedField


class Product(models.Model):
    title = models.CharField(max_length=100)
    tagline = AIGeneratedField(prompt="{prompt}", max_length=200, blank=True, null=True)
"""


@contextmanager
def changed(field: AIFieldMixin, **options: object) -> Iterator[None]:
    """The field declared with other options, as after an edit and a restart."""
    original = field.ai
    field.ai = dataclasses.replace(original, **options)
    try:
        yield
    finally:
        field.ai = original


def generated_articles(titles: list[str]) -> list[Article]:
    Article.objects.bulk_create([Article(title=title) for title in titles])
    api.regenerate(Article.objects.all(), "blurb", sync=True)
    return list(Article.objects.order_by("pk"))


BLURB = get_ai_field(Article, "blurb")


def test_values_written_before_a_prompt_change_are_stale_and_no_others():
    first, second, third = generated_articles(["Tea", "Coffee", "Cocoa"])
    assert list(api.stale(Article, "blurb")) == []
    with changed(BLURB, prompt="Write a short blurb for {title}."):
        assert list(api.stale(Article, "blurb").order_by("pk")) == [first, second, third]
        assert api.is_stale(first, "blurb")
        api.regenerate(first, "blurb", sync=True)
        assert list(api.stale(Article, "blurb").order_by("pk")) == [second, third]
        assert not api.is_stale(first, "blurb")
    # Back to the first definition: the regenerated one is the stale one now.
    assert list(api.stale(Article.objects.all(), BLURB)) == [first]


@pytest.mark.parametrize(
    "option",
    [
        {"model": "gpt-4.1"},
        {"temperature": 0.2},
        {"max_tokens": 50},
        {"system_message": "Be brief."},
        {"redact_pii": True},
        {"excluded_fields": ("body",)},
        {"provider_options": {"seed": 3}},
        {"provider": "anthropic"},
    ],
    ids=lambda option: next(iter(option)),
)
def test_what_changes_the_answer_changes_the_definition(option):
    before = definition_hash(BLURB)
    with changed(BLURB, **option):
        assert definition_hash(BLURB) != before


@pytest.mark.parametrize(
    "option",
    [{"cache_ttl": 60}, {"budget_usd": 1.0}, {"stream": True}, {"auto_regenerate": False}],
    ids=lambda option: next(iter(option)),
)
def test_what_only_changes_how_the_call_is_made_does_not(option):
    before = definition_hash(BLURB)
    with changed(BLURB, **option):
        assert definition_hash(BLURB) == before


def test_a_default_model_change_in_settings_makes_values_stale(settings):
    generated_articles(["Tea"])
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_MODEL": "gpt-4.1-mini"}
    assert api.stale(Article, "blurb").count() == 1


def test_a_callable_prompt_is_defined_by_its_source():
    field = get_ai_field(Product, "tagline")
    before = definition_hash(field)
    with changed(field, prompt=lambda product: f"A tagline for {product.title}."):
        assert definition_hash(field) != before


def test_a_hand_edited_value_is_never_stale():
    tea, coffee = generated_articles(["Tea", "Coffee"])
    coffee = Article.objects.get(pk=coffee.pk)
    coffee.blurb = "Written by a person"
    coffee.save()
    with changed(BLURB, prompt="Another blurb for {title}."):
        assert list(api.stale(Article, "blurb")) == [tea]
        assert not api.is_stale(coffee, "blurb")


def test_values_without_a_recorded_definition_are_not_taken_as_stale():
    generated_articles(["Tea"])
    AIJob.objects.update(definition_hash="")  # written before definitions were recorded
    with changed(BLURB, prompt="Another blurb for {title}."):
        assert not api.stale(Article, "blurb").exists()


def test_stale_is_one_query_for_any_number_of_rows():
    generated_articles([f"Tea {i}" for i in range(30)])
    with (
        changed(BLURB, prompt="Another blurb for {title}."),
        CaptureQueriesContext(connection) as captured,
    ):
        assert len(api.stale(Article.objects.filter(title__startswith="Tea"), "blurb")) == 30
    assert len(captured) == 1


def test_a_field_inherited_through_multi_table_inheritance_is_checked_on_the_child():
    place = Restaurant.objects.create(name="Chez Ada", city="Paris")
    api.regenerate(place, "blurb", sync=True)
    with changed(get_ai_field(Restaurant, "blurb"), prompt="Another {name} in {city}."):
        assert list(api.stale(Restaurant, "blurb")) == [place]


def test_rows_with_a_uuid_primary_key_are_matched_with_their_jobs():
    first, second = Voucher.objects.create(code="TEA10"), Voucher.objects.create(code="TEA20")
    api.regenerate(Voucher.objects.all(), "blurb", sync=True)
    assert AIJob.objects.filter(object_id=str(first.pk), status=Status.SUCCEEDED).exists()
    with changed(get_ai_field(Voucher, "blurb"), prompt="Describe {code} briefly."):
        assert set(api.stale(Voucher, "blurb")) == {first, second}
        assert api.is_stale(first, "blurb")


def test_ai_regenerate_stale_combines_with_only_empty_failed_and_filter():
    _tea, coffee, _cocoa = generated_articles(["Tea", "Coffee", "Cocoa"])
    answer = api.latest_job(coffee, "blurb")
    AIJob.objects.create(  # a later attempt failed: coffee's value is still its answer
        content_type=answer.content_type,
        object_id=answer.object_id,
        field_name="blurb",
        status=Status.FAILED,
    )
    Article.objects.bulk_create([Article(title="Mate")])  # empty, no job
    with changed(BLURB, prompt="Another blurb for {title}."):
        assert dry_run("--stale") == 3
        assert dry_run("--only-empty") == 1
        assert dry_run("--failed") == 1
        assert dry_run("--stale", "--only-empty", "--failed") == 4  # any of them
        assert dry_run("--stale", "--filter", "title=Tea") == 1
        assert dry_run("--failed", "--only-empty") == 2


def dry_run(*args: str) -> int:
    out = StringIO()
    call_command(
        "ai_regenerate", "testapp.Article", "--field", "blurb", "--dry-run", *args, stdout=out
    )
    first_line = out.getvalue().splitlines()[0]
    return int(first_line.split("would request ")[1].split(" ")[0])


def test_ai_status_counts_stale_values_per_field():
    generated_articles(["Tea", "Coffee"])
    out = StringIO()
    with changed(BLURB, prompt="Another blurb for {title}."), pytest.raises(CommandError):
        call_command("ai_status", "--no-providers", stdout=out)  # unhealthy: no worker
    assert "  testapp.Article.blurb: 2 stale" in out.getvalue().splitlines()
    assert "testapp.Lead.summary" not in out.getvalue()  # none stale: not listed


# -- a real prompt change: the model file edited, a new process --------------------------


class Shop(FreshProject):
    """A fresh project whose ``shop.Product.tagline`` prompt the test edits."""

    prompt = "A tagline for {title}"

    def write(self) -> None:
        super().write()
        models_py = SHOP_MODELS.replace("{prompt}", self.prompt)
        (self.directory / "shop" / "models.py").write_text(models_py)

    def run(self, *args: str) -> str:
        result = self.manage(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def shell(self, code: str) -> str:
        return self.run("shell", "-c", code)


def test_after_a_prompt_change_in_the_model_file_ai_regenerate_stale_calls_exactly_those(
    tmp_path: Path, fake_provider
):
    shop = Shop(
        tmp_path / "shop_project",
        with_ai_field=True,
        ai_fields={
            "DEFAULT_PROVIDER": "openai",
            "PROVIDERS": {
                "openai": {"API_KEY": "sk-test", "BASE_URL": fake_provider.openai_base_url}
            },
        },
    )
    shop.run("makemigrations", "shop", "-v", "0")
    shop.run("migrate", "-v", "0")
    shop.shell(
        "from shop.models import Product\n"
        "titles = ('Tea', 'Coffee', 'Cocoa', 'Mate')\n"
        "Product.objects.bulk_create([Product(title=t) for t in titles])"
    )
    shop.run("ai_regenerate", "shop.Product", "--sync")
    shop.shell(
        "from shop.models import Product\n"
        "mate = Product.objects.get(title='Mate')\n"
        "mate.tagline = 'Written by a person'\n"
        "mate.save()"
    )
    assert fake_provider.calls == 4

    shop.prompt = "A catchy tagline for {title}"  # the model file edited; a new process
    assert "would request 3 AI job(s)" in shop.run(
        "ai_regenerate", "shop.Product", "--field", "tagline", "--stale", "--dry-run"
    )
    assert fake_provider.calls == 4
    shop.run("ai_regenerate", "shop.Product", "--field", "tagline", "--stale", "--sync")
    assert fake_provider.calls == 7
    assert {r.body["messages"][1]["content"][:18] for r in fake_provider.provider_requests[4:]} == {
        "A catchy tagline f"
    }
    counts = shop.shell(
        "import json\n"
        "from django_ai_fields.api import stale, is_stale\n"
        "from shop.models import Product\n"
        "mate = Product.objects.get(title='Mate')\n"
        "print(json.dumps([stale(Product, 'tagline').count(), is_stale(mate, 'tagline'),"
        " mate.tagline]))"
    )
    assert json.loads(counts.splitlines()[-1]) == [0, False, "Written by a person"]
    assert "No changes detected" in shop.run("makemigrations", "--check", "--dry-run", "shop")
