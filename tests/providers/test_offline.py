"""The offline provider answers as a model would: from the record's text, deterministically."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from django_ai_fields.declare.prompts import fence
from django_ai_fields.models import AIUsage
from django_ai_fields.providers import CompletionRequest
from django_ai_fields.providers.offline import OfflineProvider
from tests.testapp.models import PROFILE_SCHEMA, Lead, Pitch

ROOT = Path(__file__).resolve().parents[2]

NOTES = (
    "Met at the spring fair. Team of 120 engineers in the automotive industry; they are "
    "evaluating us against two competitors. Interested in analytics and automation. "
    "Follow up next month."
)
# Rendered as the app renders "Summarize this lead in two sentences. Record: {*}".
RECORD = "Summarize this lead in two sentences. Record: " + fence(
    f"Name: Grace Hopper\nCompany: Compiler Works\nNotes: {NOTES}"
)
HEAT = ["hot", "warm", "cold"]


def ask(prompt: str, **values: Any) -> str:
    request = CompletionRequest(
        **{
            "system": "You write a value.",
            "prompt": prompt,
            "model": "m",
            "max_tokens": 200,
            **values,
        }
    )
    return OfflineProvider({}).complete(request).text


def notes_prompt(notes: str, instruction: str = "How ready to buy is this lead? Notes: ") -> str:
    return instruction + fence(notes, "notes")


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        ("Budget approved; asked for a contract draft this week.", "hot"),
        ("Evaluating us against two competitors, follow up after their planning.", "warm"),
        ("Downloaded the whitepaper once. No reply to the last two emails.", "cold"),
    ],
)
def test_a_choice_follows_the_cues_in_the_record(notes: str, expected: str) -> None:
    assert ask(notes_prompt(notes), choices=HEAT) == expected


def test_a_choice_named_in_the_record_wins_and_the_instruction_does_not_count() -> None:
    instruction = "Is this ticket about billing, shipping or something else? Ticket: "
    prompt = notes_prompt("Where is my parcel? The shipping label was never sent.", instruction)
    assert ask(prompt, choices=["billing", "shipping", "other"]) == "shipping"


def test_without_cues_the_choice_is_one_of_them_and_stable() -> None:
    answers = [ask(notes_prompt(f"Lead number {n}."), choices=HEAT) for n in range(12)]
    assert set(answers) <= set(HEAT)
    assert len(set(answers)) > 1  # the fallback depends on the record
    assert answers == [ask(notes_prompt(f"Lead number {n}."), choices=HEAT) for n in range(12)]


# --------------------------------------------------------------------------- JSON

PROFILE_WITH_INTERESTS = {
    **PROFILE_SCHEMA,
    "properties": {
        **PROFILE_SCHEMA["properties"],
        "interests": {"type": "array", "items": {"type": "string"}},
        "budget_approved": {"type": "boolean"},
        "stage": {"enum": ["new", "evaluating", "won"]},
    },
}


def test_json_is_filled_from_the_text_and_valid_against_the_schema() -> None:
    prompt = "Extract company facts: " + fence(NOTES + " Budget approved.", "notes")
    answer = json.loads(ask(prompt, json_schema=PROFILE_WITH_INTERESTS, json_output=True))
    jsonschema.validate(answer, PROFILE_WITH_INTERESTS)
    assert answer == {
        "industry": "automotive",
        "employees": 120,
        "interests": ["analytics", "automation"],
        "budget_approved": True,
        "stage": "evaluating",
    }


def test_json_properties_take_the_record_fields_and_names_of_the_same_name() -> None:
    by_label = json.loads(
        ask(
            RECORD,
            json_schema={"type": "object", "properties": {"company": {"type": "string"}}},
            json_output=True,
        )
    )
    assert by_label == {"company": "Compiler Works"}
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "company": {"type": "string", "minLength": 1},
            "notes": {"type": "string"},
        },
        "required": ["name", "company", "notes"],
    }
    email = "The e-mail: " + fence(
        "Hi, Ada here from Analytical Engines. We need 40 seats.", "email"
    )
    answer = json.loads(ask(email, json_schema=schema, json_output=True))
    assert answer == {"name": "Ada", "company": "Analytical Engines", "notes": "We need 40 seats."}


def test_json_not_in_the_text_gets_defaults_that_validate() -> None:
    schema = {
        "type": "object",
        "properties": {
            "industry": {"type": "string", "minLength": 12},
            "employees": {"type": "integer", "minimum": 5},
            "code": {"type": "string", "maxLength": 3},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "website": {"type": "string"},
        },
        "required": ["industry", "employees", "code", "tags"],
        "additionalProperties": False,
    }
    answer = json.loads(ask(notes_prompt("Nothing useful."), json_schema=schema, json_output=True))
    jsonschema.validate(answer, schema)
    assert "website" not in answer  # optional and not in the text: left out
    capped = {"type": "object", "properties": {"employees": {"type": "integer", "maximum": 50}}}
    prompt = notes_prompt(NOTES)  # "Team of 120 engineers"
    assert json.loads(ask(prompt, json_schema=capped, json_output=True)) == {"employees": 50}


def test_json_follows_refs_and_optional_values_as_pydantic_writes_them() -> None:
    schema = {
        "$defs": {
            "Contact": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "email": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["name", "email"],
            }
        },
        "type": "object",
        "properties": {"contact": {"$ref": "#/$defs/Contact"}},
        "required": ["contact"],
    }
    mail = "Hi, Ada here from Analytical Engines. Email: ada@analytical.example, any time."
    answer = json.loads(ask(notes_prompt(mail), json_schema=schema, json_output=True))
    jsonschema.validate(answer, schema)
    assert answer == {"contact": {"name": "Ada", "email": "ada@analytical.example"}}


def test_json_without_a_schema_is_the_record_by_label() -> None:
    answer = json.loads(ask(RECORD, json_output=True))
    assert answer == {"name": "Grace Hopper", "company": "Compiler Works", "notes": NOTES}


# --------------------------------------------------------------------------- text


def test_the_summary_is_extractive_and_leaves_the_instruction_out() -> None:
    summary = ask(RECORD)
    sentences = re.split(r"(?<=\.)\s+", summary)
    assert len(sentences) == 2  # "in two sentences"
    assert all(sentence in NOTES for sentence in sentences)
    assert "Team of 120 engineers" in summary  # the most informative one
    assert "Summarize" not in summary and "Name:" not in summary and "<data" not in summary


def test_the_summary_respects_max_tokens_and_max_length() -> None:
    assert len(ask(RECORD, max_tokens=8)) <= 32
    limited = ask(RECORD, system="Answer in at most 40 characters.")
    assert len(limited) <= 40 and limited.endswith("…")


def test_a_record_without_prose_is_summarised_by_its_values() -> None:
    prompt = "Write a blurb for " + fence("Ada Lovelace", "name") + " " + fence("Acme", "company")
    assert ask(prompt) == "Ada Lovelace (Acme)"


def test_a_headline_is_one_short_clause_of_the_record() -> None:
    headline = ask("Write a one-line headline for this lead: " + fence(NOTES, "notes"))
    assert headline == "Team of 120 engineers in the automotive industry"
    long = "The customer who signed last week wants the whole procurement team trained in May."
    short = ask(notes_prompt(long, "Title for: "))
    assert len(short.split()) <= 10 and short.split() == long.split()[: len(short.split())]


# --------------------------------------------------------------------------- determinism

SCRIPT = """
import json
from django_ai_fields.providers import CompletionRequest
from django_ai_fields.providers.offline import OfflineProvider

def ask(**values):
    request = CompletionRequest(system="", model="m", max_tokens=200, **values)
    return OfflineProvider({}).complete(request).text

prompt = %r
print(json.dumps([
    ask(prompt=prompt),
    ask(prompt="Headline: " + prompt),
    ask(prompt=prompt, choices=["hot", "warm", "cold"]),
    ask(prompt="<data>no cue here</data>", choices=["a", "b", "c", "d", "e"]),
    ask(prompt=prompt, json_schema=%r, json_output=True),
]))
"""


def test_the_same_request_gets_the_same_answer_in_fresh_processes() -> None:
    script = SCRIPT % (RECORD, PROFILE_WITH_INTERESTS)
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]
    summary, headline, heat, _fallback, profile = json.loads(outputs[0])
    assert "Team of 120 engineers" in summary and headline.startswith("Team of 120")
    assert heat == "warm" and json.loads(profile)["employees"] == 120


# --------------------------------------------------------------------------- the app's path


@pytest.mark.django_db(transaction=True)
def test_offline_fields_through_the_worker(fake_provider, settings, worker) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "offline"}
    lead = Lead.objects.create(name="Grace", company="Compiler Works", notes=NOTES)
    pitch = Pitch.objects.create(notes=NOTES)
    worker.drain()
    lead.refresh_from_db()
    pitch.refresh_from_db()
    assert all(s in NOTES for s in lead.summary.split(". ")) and "120 engineers" in lead.summary
    assert lead.heat == "warm"
    assert lead.profile == {"industry": "automotive", "employees": 120}
    assert pitch.headline == "Team of 120 engineers in the automotive industry"
    assert fake_provider.calls == 0
    usage = AIUsage.objects.filter(provider="offline", success=True)
    assert usage.count() == 6  # the lead's 3 fields; the pitch's summary, headline, tweet
    assert all(row.input_tokens > 20 and row.output_tokens > 0 for row in usage)
    assert sum(row.cost_usd for row in usage) == 0
