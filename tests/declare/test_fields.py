"""Field definitions: no AI options in migrations, column types, JSON, abstract parents."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, models
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.test.utils import isolate_apps

from django_ai_fields.declare.options import FieldOptions
from django_ai_fields.fields import AIGeneratedField, AIGeneratedJSONField, get_ai_field
from django_ai_fields.intake.tracking import install, tracker_for
from django_ai_fields.models import AIJob
from tests.testapp.models import HEAT_CHOICES, Article, Describable, Lead

ALL_AI_OPTIONS = {
    "prompt": "Summarize {text}",
    "excluded_fields": ["secret"],
    "trigger_fields": ["text"],
    "provider": "anthropic",
    "model": "claude-haiku-4-5",
    "temperature": 0.2,
    "max_tokens": 300,
    "system_message": "Be brief.",
    "cache_ttl": 3600,
    "budget_usd": 5.0,
    "auto_regenerate": False,
    "max_input_chars": 1000,
    "max_input_tokens": 500,
    "fallback": [("openai", "gpt-4o-mini")],
    "provider_options": {"seed": 1},
    "stream": True,
    "keep_manual_edits": False,
    "redact_pii": ["email"],
    "restore_pii": True,
    "inputs": ["secret"],
    "tools": ["web_search"],
    "api": "responses",
    "review": True,
}


def test_the_migration_tests_below_set_every_ai_option() -> None:
    """A new option (one line in declare/options.py) is covered here without more."""
    assert set(ALL_AI_OPTIONS) == FieldOptions.names()


def test_text_field_deconstructs_without_ai_options() -> None:
    field = AIGeneratedField(**ALL_AI_OPTIONS, max_length=8, choices=HEAT_CHOICES, null=True)
    _name, path, args, kwargs = field.deconstruct()
    assert path == "django_ai_fields.fields.AIGeneratedField"
    assert args == []
    assert kwargs == {"max_length": 8, "choices": HEAT_CHOICES, "null": True}


def test_json_field_deconstructs_without_ai_options_or_schema() -> None:
    field = AIGeneratedJSONField(**ALL_AI_OPTIONS, schema={"type": "object"}, blank=True)
    _name, path, _args, kwargs = field.deconstruct()
    assert path == "django_ai_fields.fields.AIGeneratedJSONField"
    assert kwargs == {"blank": True}


def memo_state(**out_options: object) -> ProjectState:
    """The project state of a one-model app whose AI field takes ``out_options``."""
    with isolate_apps("tests.testapp") as isolated:

        class Memo(models.Model):
            text = models.TextField()
            secret = models.TextField()
            out = AIGeneratedField(null=True, **out_options)  # type: ignore[arg-type]

            class Meta:
                app_label = "testapp"

        return ProjectState.from_apps(isolated)


def detected_changes(before: ProjectState, after: ProjectState) -> dict[str, list[object]]:
    # A graph with testapp's real leaf, so the autodetector keeps what it finds.
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return MigrationAutodetector(before, after).changes(graph=graph)


def test_changing_every_ai_option_makes_no_migration() -> None:
    before = memo_state(prompt="Summarize {text}")
    after = memo_state(**ALL_AI_OPTIONS)
    assert detected_changes(before, after) == {}


def test_changing_a_column_option_does_make_a_migration() -> None:
    """Control for the test above: the autodetector does see real changes."""
    before = memo_state(prompt="Summarize {text}")
    after = memo_state(prompt="Summarize {text}", max_length=40)
    changes = detected_changes(before, after)
    assert [type(op).__name__ for m in changes["testapp"] for op in m.operations] == ["AlterField"]


@pytest.mark.django_db
def test_project_migrations_are_up_to_date() -> None:
    # Raises SystemExit(1) if makemigrations would write anything.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def column_type(table: str, column: str) -> str:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    info = next(c for c in description if c.name == column)
    return connection.introspection.get_field_type(info.type_code, info)


@pytest.mark.django_db
def test_max_length_makes_a_varchar_column() -> None:
    heat = Lead._meta.get_field("heat")
    assert "varchar" in heat.db_type(connection).lower()
    assert column_type(Lead._meta.db_table, "heat") == "CharField"


@pytest.mark.django_db
def test_without_max_length_the_column_is_text() -> None:
    summary = Lead._meta.get_field("summary")
    assert summary.db_type(connection).lower() == "text"
    assert column_type(Lead._meta.db_table, "summary") == "TextField"


@pytest.mark.django_db
def test_json_field_round_trips_and_supports_key_lookups() -> None:
    lead = Lead.objects.create(name="Ada")
    profile = {"industry": "fintech", "employees": 12, "tags": ["b2b", "ünïcode"], "x": None}
    lead.profile = profile
    lead.save()
    assert Lead.objects.get(pk=lead.pk).profile == profile
    assert Lead.objects.filter(profile__industry="fintech").get() == lead
    assert Lead.objects.filter(profile__employees__gt=20).count() == 0


@pytest.mark.django_db
def test_text_field_round_trips() -> None:
    lead = Lead.objects.create(name="Ada")
    Lead.objects.filter(pk=lead.pk).update(summary="Ada — a lead\nline 2", heat="warm")
    lead.refresh_from_db()
    assert (lead.summary, lead.heat, lead.get_heat_display()) == (
        "Ada — a lead\nline 2",
        "warm",
        "Warm",
    )


def test_abstract_parent_gets_no_tracking_and_the_subclass_does() -> None:
    assert install(Describable) is None
    assert tracker_for(Describable) is None
    tracker = tracker_for(Article)
    assert tracker is not None
    assert tracker.attnames == ("title", "blurb")  # the trigger, then the AI column
    blurb = get_ai_field(Article, "blurb")
    assert blurb.model is Article
    assert blurb.ai.prompt == "Write a blurb for {title}."


@pytest.mark.django_db
def test_saving_a_subclass_of_an_abstract_model_creates_a_job() -> None:
    article = Article.objects.create(title="Green tea")
    job = AIJob.objects.get()
    assert job.content_type == ContentType.objects.get_for_model(Article)
    assert (job.object_id, job.field_name, job.status) == (str(article.pk), "blurb", "pending")


@pytest.mark.django_db(transaction=True)
def test_inherited_field_is_generated_by_the_worker(fake_provider, worker) -> None:  # type: ignore[no-untyped-def]
    fake_provider.responder = lambda request: "Fresh leaves, brewed right."
    article = Article.objects.create(title="Green tea")
    worker.drain()
    article.refresh_from_db()
    assert article.blurb == "Fresh leaves, brewed right."
    messages = fake_provider.last_request.body["messages"]
    assert messages[-1] == {
        "role": "user",
        "content": 'Write a blurb for <data field="title">Green tea</data>.',
    }
