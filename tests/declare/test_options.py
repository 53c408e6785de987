"""Issue 22: each AI option is declared once (declare/options.py): a field keeps its
options in ``field.ai``, a function in ``function.options``, and field generation
runs with the field's own object."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType

from django_ai_fields import functions
from django_ai_fields.api import regenerate, run_ai_task
from django_ai_fields.declare.options import AIOptions, FieldOptions
from django_ai_fields.fields import AIGeneratedField
from django_ai_fields.functions import AIFunction, register
from django_ai_fields.generation import FieldGeneration
from tests.testapp.models import Lead


def test_a_field_keeps_its_options_in_one_frozen_object() -> None:
    tools = ["web_search"]
    field = AIGeneratedField(
        prompt="Describe {name}", model="gpt-4.1", tools=tools, provider_options={"seed": 1}
    )
    assert (field.ai.prompt, field.ai.model) == ("Describe {name}", "gpt-4.1")
    assert isinstance(field.ai, FieldOptions)
    tools.append("code_interpreter")  # the caller's list is not the field's
    assert field.ai.tools == ("web_search",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        field.ai.model = "gpt-4o"  # type: ignore[misc]


def test_the_llm_model_option_leaves_djangos_field_model_alone() -> None:
    summary = Lead._meta.get_field("summary")
    assert summary.model is Lead  # Django's model class
    assert summary.ai.model is None  # the LLM model: the provider's default


def test_a_misspelt_option_is_refused_by_django() -> None:
    with pytest.raises(TypeError, match="promt"):
        AIGeneratedField(promt="Describe {name}")


@pytest.mark.django_db
def test_field_generation_runs_with_the_fields_own_options() -> None:
    heat = Lead._meta.get_field("heat")
    generation = FieldGeneration(ContentType.objects.get_for_model(Lead), "1", "heat")
    assert generation.options is heat.ai


@pytest.mark.django_db(transaction=True)
def test_a_fields_call_options_reach_the_provider(fake_provider, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    summary = Lead._meta.get_field("summary")
    options = dataclasses.replace(
        summary.ai,
        model="gpt-4.1-mini",
        temperature=0.25,
        max_tokens=77,
        provider_options={"seed": 7},
        system_message="Be brief.",
    )
    monkeypatch.setattr(summary, "ai", options)
    fake_provider.reply_text = "A lead."
    lead = Lead.objects.create(name="Ada", company="AE")
    assert regenerate(lead, "summary", sync=True).status == "succeeded"
    body = fake_provider.last_request.body
    sent = (body["model"], body["temperature"], body["max_tokens"], body["seed"])
    assert sent == ("gpt-4.1-mini", 0.25, 77, 7)
    assert body["messages"][0]["content"].startswith("Be brief.")


def test_a_functions_class_attributes_are_its_options() -> None:
    class Summarize(AIFunction):
        name = "summarize_for_options_test"
        model = "gpt-4.1-mini"
        temperature = 0.5
        tools = ["web_search"]

    class Colder(Summarize):
        temperature = 0.1

    assert AIFunction.options == AIOptions()
    assert Summarize.options == AIOptions(
        model="gpt-4.1-mini", temperature=0.5, tools=("web_search",)
    )
    assert Colder.options == AIOptions(model="gpt-4.1-mini", temperature=0.1, tools=("web_search",))


@pytest.mark.django_db(transaction=True)
def test_a_functions_class_attributes_reach_the_provider(fake_provider, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(functions, "_registry", dict(functions._registry))

    @register
    class Slogan(AIFunction):
        name = "slogan_for_options_test"
        model = "gpt-4.1-mini"
        temperature = 0.25
        max_tokens = 77
        provider_options = {"seed": 7}
        system_message = "Be brief."

        def build_prompt(self, data: Any) -> str:
            return "A slogan, please."

    fake_provider.reply_text = "Think different."
    job = run_ai_task("slogan_for_options_test", {}, sync=True)
    assert (job.status, job.output) == ("succeeded", "Think different.")
    body = fake_provider.last_request.body
    sent = (body["model"], body["temperature"], body["max_tokens"], body["seed"])
    assert sent == ("gpt-4.1-mini", 0.25, 77, 7)
    assert body["messages"][0]["content"].startswith("Be brief.")
