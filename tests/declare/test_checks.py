"""System checks: every configuration mistake is a check error naming model and field."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test.utils import isolate_apps, modify_settings, override_settings

from django_ai_fields.declare.checks import check_installation
from django_ai_fields.fields import AIGeneratedField, AIGeneratedJSONField
from django_ai_fields.intake.tracking import tracker_for
from django_ai_fields.providers import CompletionRequest, CompletionResponse, Provider


class EchoProvider(Provider):
    """A custom provider given by dotted path."""

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        return CompletionResponse(text=request.prompt)


ECHO = f"{__name__}.EchoProvider"


def contact_model(out: models.Field) -> type[models.Model]:
    """A model in the isolated registry with ``out`` as its AI field, declared in its body
    (so tracking sees the field when the class is prepared, as for a real model)."""
    attrs = {
        "__module__": __name__,
        "Meta": type("Meta", (), {"app_label": "testapp"}),
        "name": models.CharField(max_length=100),
        "notes": models.TextField(blank=True),
        "ssn": models.CharField(max_length=11, blank=True),
        "out": out,
    }
    return type("Contact", (models.Model,), attrs)


def ai_errors(model: type[models.Model]) -> list[checks.CheckMessage]:
    return [e for e in model.check() if e.id.startswith("django_ai_fields.")]


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id.removeprefix("django_ai_fields.") for m in messages]


@pytest.mark.parametrize(
    ("options", "code", "detail"),
    [
        ({}, "E001", "has no prompt"),
        ({"prompt": "Hi {name"}, "E002", "malformed prompt"),
        ({"prompt": "Hi {a.b}"}, "E002", "malformed prompt"),
        ({"prompt": "Hi {nope}"}, "E003", "{nope}"),
        ({"prompt": "Hi {name}", "trigger_fields": ["nope"]}, "E004", "'nope'"),
        ({"prompt": "Hi {name}", "excluded_fields": ["nope"]}, "E005", "'nope'"),
        ({"prompt": "Hi {ssn}", "excluded_fields": ["ssn"]}, "E006", "{ssn}"),
        (
            {"prompt": "Hi {name}", "excluded_fields": ["ssn"], "trigger_fields": ["ssn"]},
            "E007",
            "'ssn'",
        ),
        ({"prompt": "Hi {name}", "trigger_fields": ["out"]}, "E007", "'out'"),
        ({"prompt": "Hi {name}", "provider": "nope"}, "E008", "'nope'"),
        ({"prompt": "Hi {name}", "provider": "tests.nowhere.Provider"}, "E008", "nowhere"),
        (
            {"prompt": "Hi {name}", "provider": "tests.testapp.tenancy.product_tenant"},
            "E008",
            "not a django_ai_fields Provider subclass",
        ),
    ],
)
@isolate_apps("tests.testapp")
def test_misconfigured_field_is_a_check_error(
    options: dict[str, Any], code: str, detail: str
) -> None:
    # Defining the model must not raise: the mistake is reported by the check.
    field = AIGeneratedField(null=True, **options)
    model = contact_model(field)
    errors = ai_errors(model)
    assert ids(errors) == [code]
    assert errors[0].msg.startswith("testapp.Contact.out ")
    assert detail in errors[0].msg
    assert errors[0].obj is field


@isolate_apps("tests.testapp")
def test_invalid_json_schema_is_e009() -> None:
    field = AIGeneratedJSONField(prompt="Facts: {notes}", schema={"type": "nonsense"}, null=True)
    errors = ai_errors(contact_model(field))
    assert ids(errors) == ["E009"]
    assert errors[0].msg.startswith("testapp.Contact.out has an invalid JSON Schema")


@isolate_apps("tests.testapp")
def test_several_mistakes_are_all_reported() -> None:
    field = AIGeneratedField(
        prompt="{nope} {ssn}",
        excluded_fields=["ssn", "gone"],
        trigger_fields=["missing"],
        provider="nope",
        null=True,
    )
    assert sorted(ids(ai_errors(contact_model(field)))) == ["E003", "E004", "E005", "E006", "E008"]


@pytest.mark.parametrize("provider", [None, "openai", "anthropic", "azure", "offline", ECHO])
@isolate_apps("tests.testapp")
def test_well_configured_fields_pass(provider: str | None) -> None:
    field = AIGeneratedField(
        prompt="Hi {name}: {*} #{record_id} {model_name} {tenant} {{literal}}",
        excluded_fields=["ssn"],
        trigger_fields=["name", "notes"],
        provider=provider,
        null=True,
    )
    model = contact_model(field)
    assert ai_errors(model) == []
    tracker = tracker_for(model)
    assert tracker is not None
    assert tracker.attnames == ("name", "notes", "out")  # triggers, then the AI column


@isolate_apps("tests.testapp")
def test_valid_json_schema_and_callable_prompt_pass() -> None:
    field = AIGeneratedJSONField(
        prompt=lambda contact: f"Facts about {contact.name}",
        trigger_fields=["name"],
        schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        null=True,
    )
    assert ai_errors(contact_model(field)) == []


def test_default_provider_is_checked(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "nope"}
    errors = check_installation()
    assert ids(errors) == ["E008"]
    assert "AI_FIELDS['DEFAULT_PROVIDER']" in errors[0].msg
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "tests.testapp.tenancy.Nope"}
    assert ids(check_installation()) == ["E008"]
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": ECHO}
    assert check_installation() == []


def test_queue_missing_from_rq_queues_is_e010(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {**settings.AI_FIELDS, "QUEUE": "ai"}
    errors = check_installation()
    assert ids(errors) == ["E010"]
    assert "'ai'" in errors[0].msg
    with override_settings(RQ_QUEUES={**settings.RQ_QUEUES, "ai": {"URL": "redis://x:1/0"}}):
        assert check_installation() == []


def test_default_queue_missing_from_rq_queues_is_e010() -> None:
    with override_settings(RQ_QUEUES={"other": {"URL": "redis://x:1/0"}}):
        assert ids(check_installation()) == ["E010"]


def test_django_rq_not_installed_is_e011() -> None:
    with modify_settings(INSTALLED_APPS={"remove": ["django_rq"]}):
        errors = check_installation()
    assert ids(errors) == ["E011"]
    assert check_installation() == []


# Django 6.1 runs the model checks against every database (JSONField support).
@pytest.mark.django_db
def test_check_command_passes_on_the_test_project() -> None:
    out = StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


@pytest.mark.django_db
def test_check_command_fails_on_a_misconfiguration(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {**settings.AI_FIELDS, "QUEUE": "ai"}
    with pytest.raises(SystemCheckError, match=r"django_ai_fields\.E010"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


# -- issue 13: relations, chains and settings typos --------------------------------------


@isolate_apps("tests.testapp")
def test_a_reverse_relation_or_generic_fk_placeholder_is_e013_with_a_hint() -> None:
    from django.contrib.contenttypes.fields import GenericForeignKey
    from django.contrib.contenttypes.models import ContentType

    class Owner(models.Model):
        name = models.CharField(max_length=10)
        content_type = models.ForeignKey(ContentType, null=True, on_delete=models.CASCADE)
        object_id = models.CharField(max_length=10, blank=True)
        target = GenericForeignKey("content_type", "object_id")
        out = AIGeneratedField(prompt="{name} owns {pets}, points at {target}", null=True)

        class Meta:
            app_label = "testapp"

    class Pet(models.Model):
        owner = models.ForeignKey(Owner, related_name="pets", on_delete=models.CASCADE)

        class Meta:
            app_label = "testapp"

    errors = ai_errors(Owner)
    assert ids(errors) == ["E013", "E013"]
    assert "'pets', a reverse or generic relation" in errors[0].msg
    assert "'target', a reverse or generic relation" in errors[1].msg
    assert "callable prompt" in errors[0].hint
    assert tracker_for(Owner) is None  # never a crash at save or job time


@isolate_apps("tests.testapp")
def test_a_cycle_among_ai_fields_is_e014_naming_the_fields() -> None:
    class Loop(models.Model):
        notes = models.TextField()
        a = AIGeneratedField(prompt="From {notes} and {c}", null=True)
        b = AIGeneratedField(prompt="From {a}", null=True)
        c = AIGeneratedField(prompt="From {b}", null=True)
        ok = AIGeneratedField(prompt="From {notes}", null=True)

        class Meta:
            app_label = "testapp"

    errors = ai_errors(Loop)
    assert ids(errors) == ["E014"]
    assert errors[0].msg == "testapp.Loop.a is part of a cycle of AI fields: a -> c -> b -> a."
    tracker = tracker_for(Loop)
    assert tracker is not None and [f.name for f in tracker.fields] == ["ok"]


@isolate_apps("tests.testapp")
def test_a_self_referencing_prompt_is_a_cycle() -> None:
    field = AIGeneratedField(prompt="Improve {out} for {name}", null=True)
    assert ids(ai_errors(contact_model(field))) == ["E014"]


def test_a_chain_of_ai_fields_passes_the_checks() -> None:
    from tests.testapp.models import Pitch

    assert ai_errors(Pitch) == []


def setting_messages() -> list[checks.CheckMessage]:
    return [
        m
        for m in check_installation()
        if m.id in ("django_ai_fields.W013", "django_ai_fields.E015")
    ]


def test_unknown_top_level_setting_is_a_warning_with_did_you_mean(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFUALT_MODEL": "gpt-4o"}
    (message,) = setting_messages()
    assert isinstance(message, checks.Warning)
    assert "'DEFUALT_MODEL'" in message.msg
    assert message.hint == "Did you mean 'DEFAULT_MODEL'?"


@pytest.mark.django_db  # Django 6.1's `check` command runs the database checks too
def test_unknown_key_in_a_providers_entry_is_an_error_with_did_you_mean(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "PROVIDERS": {"openai": {"API_KEY": "sk-x", "BASEURL": "http://10.0.0.5/v1"}},
    }
    (message,) = setting_messages()
    assert message.level == checks.ERROR and message.id == "django_ai_fields.E015"
    assert "AI_FIELDS['PROVIDERS']['openai'] has an unknown key 'BASEURL'" in message.msg
    assert message.hint == "Did you mean 'BASE_URL'?"
    assert "sk-x" not in message.msg + message.hint  # no secret in the output
    with pytest.raises(SystemCheckError, match="BASEURL"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_known_settings_keys_make_no_message(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "PROVIDERS": {"azure": {"API_KEY": "k", "BASE_URL": "u", "API_VERSION": "v", "TIMEOUT": 3}},
    }
    assert setting_messages() == []
