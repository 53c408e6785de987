"""PII redaction (redact_pii=, restore_pii=, TenantPolicy): what the fake provider
receives over real HTTP, what is written back, what the job keeps."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models
from django.test.utils import isolate_apps

from django_ai_fields.api import regenerate, run_ai_task
from django_ai_fields.declare.checks import check_installation
from django_ai_fields.declare.options import FieldOptions
from django_ai_fields.fields import AIGeneratedField
from django_ai_fields.functions import AIFunction, register
from django_ai_fields.jobs import batches
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, AIUsage, ErrorCode, Status, TenantPolicy
from django_ai_fields.privacy import pii, redaction
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from tests.fake_provider import FakeProvider, RecordedRequest
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

# Every supported format of every built-in type, as seeded into a lead's notes.
SEEDED = {
    "email": [
        "ada.lovelace+crm@example.co.uk",
        "ADA_L@Example.ORG",
        "o'brien@mail.example.com",
    ],
    "phone": [
        "+1 415 555 0100",
        "(415) 555-2671",
        "415.555.2672",
        "+1-202-555-0173",
        "+44 20 7946 0958",
        "+49 30 901820",
        "+33 1 42 68 53 00",
    ],
    "card": [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "6011111111111117",
    ],
    "iban": [
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "nl91 abna 0417 1643 00",
    ],
    "ssn": ["078-05-1120", "219 09 9999", "SSN: 536220917"],
    "ip": ["192.168.10.24", "8.8.4.4", "2001:db8::8a2e:370:7334", "fe80::1", "::ffff:192.0.2.128"],
}
SEEDED_NOTES = "\n".join(
    f"{entity} {n}: {value} (noted)."
    for entity, values in SEEDED.items()
    for n, value in enumerate(values)
)
PLACEHOLDER = re.compile(r"<[A-Z]+_\d+>")


def secret_forms(value: str) -> list[str]:
    """The value as seeded and, for numbers, its bare digits (no separator trick)."""
    value = value.removeprefix("SSN: ")
    digits = re.sub(r"[^0-9A-Za-z]", "", value)
    return [value, digits] if len(digits) >= 9 and ":" not in value else [value]


def user_message(request: RecordedRequest) -> str:
    return request.body["messages"][1]["content"]


def echo_placeholders(request: RecordedRequest) -> str:
    """Answer each field sensibly; the summary quotes the prompt's placeholders back."""
    system = request.body["messages"][0]["content"]
    if 'field "heat"' in system:
        return "warm"
    if 'field "profile"' in system:
        return '{"industry": "saas", "employees": 5}'
    return "Reply to " + " and ".join(PLACEHOLDER.findall(user_message(request)))


@pytest.fixture
def field_options(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set AI options on a test model's field for one test (options make no migration)."""
    names = FieldOptions.names()

    def set_options(field_name: str = "summary", **options: Any) -> None:
        field = Lead._meta.get_field(field_name)
        ai_options = {name: options.pop(name) for name in list(options) if name in names}
        monkeypatch.setattr(field, "ai", dataclasses.replace(field.ai, **ai_options))
        for name, value in options.items():  # the field's own: max_length, schema
            monkeypatch.setattr(field, name, value)

    return set_options


@pytest.fixture
def answering(fake_provider: FakeProvider) -> Iterator[FakeProvider]:
    fake_provider.responder = echo_placeholders
    yield fake_provider


def drain_here() -> None:
    """Run the queue in this process (with a real Redis too): the field options the
    tests set on a model's field exist only here, not in an rqworker subprocess."""
    queue = get_queue()
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def make_lead(**values: Any) -> Lead:
    values = {"name": "Ada", "company": "Acme", "notes": "Wants 20 seats", **values}
    (lead,) = Lead.objects.bulk_create([Lead(**values)])
    return lead


def summary_job(lead: Lead) -> AIJob:
    return AIJob.objects.filter(object_id=str(lead.pk), field_name="summary").latest("pk")


# -- nothing seeded goes out ----------------------------------------------------------


def test_no_seeded_value_in_any_supported_format_reaches_the_provider(answering, field_options):
    field_options(redact_pii=True)
    lead = make_lead(notes=SEEDED_NOTES)
    assert run_job(regenerate(lead, "summary").pk) == Status.SUCCEEDED

    bodies = answering.bodies_text()
    leaked = [
        form for values in SEEDED.values() for value in values for form in secret_forms(value)
        if form in bodies
    ]  # fmt: skip
    assert leaked == []
    sent = user_message(answering.last_request)
    assert "(noted)" in sent and "Acme" in sent  # the rest of the record still goes
    counts = {entity: len(values) for entity, values in SEEDED.items()}
    for entity, values in SEEDED.items():
        numbers = range(1, len(values) + 1)
        assert [f"<{entity.upper()}_{n}>" in sent for n in numbers] == [True] * len(values)
    job = summary_job(lead)
    (step,) = [s for s in job.steps if "pii" in s]
    assert step["pii"] == counts
    assert step["message"] == (
        "Personal data masked: 4 card, 3 email, 4 iban, 5 ip, 7 phone, 3 ssn"
    )


def test_without_redact_pii_the_values_are_sent(answering):
    lead = make_lead(notes="Write to ada@example.com or call +1 415 555 0100.")
    run_job(regenerate(lead, "summary").pk)
    sent = user_message(answering.last_request)
    assert "ada@example.com" in sent and "+1 415 555 0100" in sent
    assert not [s for s in summary_job(lead).steps if "pii" in s]


def test_a_list_of_types_masks_only_those(answering, field_options):
    field_options(redact_pii=["email"])
    lead = make_lead(notes="Write to ada@example.com or call +1 415 555 0100.")
    run_job(regenerate(lead, "summary").pk)
    sent = user_message(answering.last_request)
    assert "ada@example.com" not in sent and "<EMAIL_1>" in sent
    assert "+1 415 555 0100" in sent


# -- restoring ------------------------------------------------------------------------


def test_restore_pii_puts_the_values_into_the_written_answer_only(answering, field_options):
    field_options(redact_pii=True, restore_pii=True)
    notes = "Mail ada@example.com, cc bob@example.org, then ada@example.com again. IP 10.1.2.3"
    lead = make_lead(notes=notes)
    job = regenerate(lead, "summary")
    assert run_job(job.pk) == Status.SUCCEEDED

    sent = user_message(answering.last_request)
    assert sent.count("<EMAIL_1>") == 2 and sent.count("<EMAIL_2>") == 1  # stable placeholders
    lead.refresh_from_db()
    expected = "Reply to ada@example.com and bob@example.org and ada@example.com and 10.1.2.3"
    assert lead.summary == expected
    job.refresh_from_db()
    # The job keeps the placeholders: no stored copy of the mapping anywhere.
    assert job.output == "Reply to <EMAIL_1> and <EMAIL_2> and <EMAIL_1> and <IP_1>"
    stored = json.dumps([job.prompt, job.output, job.steps, job.error, job.partial_output])
    assert "example.com" not in stored and "example.org" not in stored
    assert "10.1.2.3" not in stored
    usage_row = json.dumps(list(AIUsage.objects.filter(job=job).values()), default=str)
    assert "example" not in usage_row
    step = next(s for s in job.steps if "pii" in s)
    assert step["pii"] == {"email": 3, "ip": 1}


def test_without_restore_pii_the_placeholders_are_written(answering, field_options):
    field_options(redact_pii=["email"])
    lead = make_lead(notes="Mail ada@example.com")
    run_job(regenerate(lead, "summary").pk)
    lead.refresh_from_db()
    assert lead.summary == "Reply to <EMAIL_1>"


def test_placeholder_look_alikes_in_the_data_are_never_restored(answering, field_options):
    field_options(redact_pii=True, restore_pii=True)
    lead = make_lead(notes="Literally <EMAIL_2> and <PHONE_1>; real: ada@example.com")
    run_job(regenerate(lead, "summary").pk)
    sent = user_message(answering.last_request)
    assert "\u2039EMAIL_2\u203a" in sent and "\u2039PHONE_1\u203a" in sent
    lead.refresh_from_db()
    assert lead.summary == "Reply to ada@example.com"


def test_a_restored_answer_still_fits_the_column(answering, field_options, settings):
    field_options(redact_pii=True, restore_pii=True, max_length=30)
    answering.responder = lambda request: "To <EMAIL_1>"
    lead = make_lead(notes="Mail ada.lovelace.countess@analytical-engines.example.com")
    run_job(regenerate(lead, "summary").pk)
    lead.refresh_from_db()
    assert lead.summary == "To ada.lovelace.countess@analy"


def test_restoring_reaches_into_json_answers(answering, field_options):
    field_options("profile", redact_pii=True, restore_pii=True, schema={"type": "object"})
    answering.responder = lambda request: '{"contact": "<EMAIL_1>", "list": ["<PHONE_1>"]}'
    lead = make_lead(notes="ada@example.com, +1 415 555 0100")
    assert run_job(regenerate(lead, "profile").pk) == Status.SUCCEEDED
    lead.refresh_from_db()
    assert lead.profile == {"contact": "ada@example.com", "list": ["+1 415 555 0100"]}


# -- cache ----------------------------------------------------------------------------


def test_a_redacted_prompts_cache_key_differs_from_the_unredacted_ones(
    answering, field_options, settings
):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "CACHE_TTL": 3600}
    lead = make_lead(notes="Mail ada@example.com")
    run_job(regenerate(lead, "summary").pk)
    plain_key = summary_job(lead).cache_key
    field_options(redact_pii=True)
    run_job(regenerate(lead, "summary").pk)
    redacted_key = summary_job(lead).cache_key
    assert plain_key and redacted_key and plain_key != redacted_key


def test_a_cached_answer_is_restored_with_the_rows_own_values(answering, field_options, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "CACHE_TTL": 3600}
    field_options(redact_pii=True, restore_pii=True)
    first = Lead.objects.create(name="Ada", company="Acme", notes="Mail ada@example.com")
    drain_here()
    calls = answering.calls
    second = Lead.objects.create(name="Ada", company="Acme", notes="Mail bob@example.org")
    drain_here()

    # Same masked prompt: the second summary came from the cache, with its own address.
    assert summary_job(first).cache_key == summary_job(second).cache_key
    assert AIUsage.objects.filter(job=summary_job(second), cache_hit=True).exists()
    assert answering.calls - calls == 2  # heat and profile only (their prompts differ)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.summary, second.summary) == (
        "Reply to ada@example.com",
        "Reply to bob@example.org",
    )
    summaries = [
        user_message(r)
        for r in answering.provider_requests
        if 'field "summary"' in r.body["messages"][0]["content"]
    ]
    assert len(summaries) == 1  # the first row's: the second's was a cache hit
    assert "<EMAIL_1>" in summaries[0] and "@" not in summaries[0]


# -- before moderation, in chunks and batches -----------------------------------------

moderated: list[str] = []


def record_moderation(text: str, direction: str) -> None:
    moderated.append(text)


def test_moderation_sees_the_masked_prompt(answering, field_options, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "MODERATION": f"{__name__}.record_moderation"}
    moderated.clear()
    field_options(redact_pii=True)
    lead = make_lead(notes="Mail ada@example.com")
    run_job(regenerate(lead, "summary").pk)
    assert moderated and all("ada@example.com" not in text for text in moderated)
    assert "<EMAIL_1>" in moderated[0]


def test_a_backfill_chunk_masks_every_row(answering, field_options):
    field_options(redact_pii=True, restore_pii=True)
    leads = [make_lead(name=f"Lead {i}", notes=f"mail lead{i}@example.com") for i in range(4)]
    regenerate(Lead.objects.filter(pk__in=[lead.pk for lead in leads]), "summary")
    drain_here()
    assert "@example.com" not in answering.bodies_text()
    assert [lead.summary for lead in Lead.objects.order_by("pk")] == [
        f"Reply to lead{i}@example.com" for i in range(4)
    ]


def test_a_provider_batch_masks_the_uploaded_requests_and_restores_the_answers(
    answering, field_options
):
    from tests.jobs.test_batches import regenerate_in_batch, uploaded_lines

    field_options(redact_pii=True, restore_pii=True)
    make_lead(notes="mail ada@example.com")
    make_lead(name="Bob", notes="mail bob@example.org, +1 415 555 0100")
    regenerate_in_batch("--field", "summary")
    lines = uploaded_lines(answering)
    assert [PLACEHOLDER.findall(line["body"]["messages"][1]["content"]) for line in lines] == [
        ["<EMAIL_1>"],
        ["<EMAIL_1>", "<PHONE_1>"],
    ]
    assert str(batches.poll()) == "0 provider batch(es) still running, 1 ended (2 succeeded)"

    assert "example.com" not in answering.bodies_text()
    assert "example.org" not in answering.bodies_text()
    assert [lead.summary for lead in Lead.objects.order_by("pk")] == [
        "Reply to ada@example.com",
        "Reply to bob@example.org and +1 415 555 0100",
    ]
    for job in AIJob.objects.all():
        assert next(s for s in job.steps if "pii" in s)["pii"]["email"] == 1


# -- tenant policy --------------------------------------------------------------------


def test_a_tenant_policy_adds_redaction_to_fields_that_ask_for_none(answering, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.lead_tenant",
    }
    TenantPolicy.objects.create(tenant="Acme", redact_pii=True, pii_entity_types=["phone"])
    TenantPolicy.objects.create(tenant="Globex", redact_pii=True)  # blank: every built-in type
    acme = make_lead(company="Acme", notes="ada@example.com, +1 415 555 0100")
    globex = make_lead(company="Globex", notes="bob@example.org, +1 202 555 0173")

    run_job(regenerate(acme, "summary").pk)
    sent = user_message(answering.last_request)
    assert "ada@example.com" in sent and "+1 415 555 0100" not in sent
    run_job(regenerate(globex, "summary").pk)
    sent = user_message(answering.last_request)
    assert "bob@example.org" not in sent and "+1 202 555 0173" not in sent


def test_a_tenant_policy_validates_its_entity_types():
    policy = TenantPolicy(tenant="acme", redact_pii=True, pii_entity_types=["email", "passport"])
    with pytest.raises(ValidationError, match="passport"):
        policy.full_clean()
    policy.pii_entity_types = "email"
    with pytest.raises(ValidationError, match="list"):
        policy.full_clean()
    policy.pii_entity_types = ["email", "ip"]
    policy.full_clean()


def test_an_unknown_type_at_run_time_fails_the_job_before_any_call(answering, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.lead_tenant",
    }
    TenantPolicy.objects.create(tenant="Acme", redact_pii=True, pii_entity_types=["passport"])
    lead = make_lead(notes="ada@example.com")
    job = regenerate(lead, "summary")
    assert run_job(job.pk) == Status.FAILED
    job.refresh_from_db()
    assert (job.error_code, answering.calls) == (ErrorCode.BAD_REQUEST, 0)
    assert "passport" in job.error


# -- truncation -----------------------------------------------------------------------


def test_a_value_cut_by_max_input_chars_is_masked_as_well(answering, field_options):
    field_options("heat", redact_pii=True, max_input_chars=25)
    lead = make_lead(notes="Mail ada.lovelace@example.com soon")
    run_job(regenerate(lead, "heat").pk)
    sent = user_message(answering.last_request)
    assert "…[truncated]" in sent
    assert "ada.lov" not in sent and "<REDACTED> …[truncated]" in sent


# -- presidio (optional) --------------------------------------------------------------


class NameAnalyzer:
    """Stands in for presidio_analyzer.AnalyzerEngine (not installed in CI): finds
    capitalised two-word names, as spaCy's NER would, with Presidio's result shape."""

    calls: list[dict[str, Any]] = []

    def analyze(self, *, text: str, entities: list[str], language: str, score_threshold: float):
        self.calls.append({"entities": entities, "language": language, "score": score_threshold})
        found = [
            type("Result", (), {"entity_type": "PERSON", "start": m.start(), "end": m.end(),
                                "score": 0.85})()
            for m in re.finditer(r"\b(?:Ada Lovelace|Charles Babbage)\b", text)
        ]  # fmt: skip
        return [result for result in found if result.entity_type in entities]


def test_the_presidio_backend_masks_names_when_configured(answering, field_options, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "PII_PRESIDIO_ANALYZER": f"{__name__}.NameAnalyzer",
        "PII_SCORE_THRESHOLD": 0.6,
    }
    field_options(redact_pii=["person", "email"], restore_pii=True)
    NameAnalyzer.calls.clear()
    lead = make_lead(notes="Ada Lovelace (ada@example.com) met Charles Babbage.")
    run_job(regenerate(lead, "summary").pk)
    sent = user_message(answering.last_request)
    assert "Lovelace" not in sent and "Babbage" not in sent and "ada@example.com" not in sent
    assert "<PERSON_1> (<EMAIL_1>) met <PERSON_2>" in sent
    assert NameAnalyzer.calls[-1] == {"entities": ["PERSON"], "language": "en", "score": 0.6}
    lead.refresh_from_db()
    assert lead.summary == "Reply to Ada Lovelace and ada@example.com and Charles Babbage"


def test_presidio_types_without_presidio_fail_the_job_before_any_call(answering, field_options):
    field_options(redact_pii=["person"])
    lead = make_lead(notes="Ada Lovelace")
    job = regenerate(lead, "summary")
    assert run_job(job.pk) == Status.FAILED
    job.refresh_from_db()
    assert job.error_code == ErrorCode.BAD_REQUEST and "Presidio" in job.error
    assert answering.calls == 0


# -- system checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "codes"),
    [
        (True, []),
        (["email", "IBAN"], []),
        ("ssn", []),
        (["email", "passport"], ["E030"]),
        (["person"], ["E031"]),  # Presidio is not installed here
    ],
)
def test_the_system_check_rejects_unknown_entity_types(option: Any, codes: list[str]) -> None:
    with isolate_apps("tests.testapp"):

        class Contact(models.Model):
            notes = models.TextField()
            out = AIGeneratedField(prompt="Hi {notes}", redact_pii=option, null=True)

            class Meta:
                app_label = "testapp"

        errors = [e for e in Contact.check() if e.id.startswith("django_ai_fields.")]
    assert [e.id.removeprefix("django_ai_fields.") for e in errors] == codes
    assert all(isinstance(e, checks.Error) and "Contact.out" in e.msg for e in errors)
    if codes == ["E030"]:
        assert "'passport'" in errors[0].msg


# -- the detector, unit by unit -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("order 4111111111111112", []),  # fails Luhn
        ("DE89 3704 0044 0532 0130 01", []),  # fails mod-97
        ("SSN 000-12-3456 or 666-12-3456", []),  # never issued
        ("123456789", []),  # nine digits without a label
        ("at 12:30:45 on 2026-01-15", []),  # times and dates
        ("ip 256.1.1.1", []),
        ("Card 4111 1111 1111 1111 12/27", [("card", "4111 1111 1111 1111")]),
        ("ssn is 078051120", [("ssn", "078051120")]),
        ("v 1.2.3.4", [("ip", "1.2.3.4")]),  # a version number looks like an address
    ],
)
def test_the_built_in_detector(text: str, found: list[tuple[str, str]]) -> None:
    spans = pii.find(text, pii.BUILTIN_TYPES)
    assert [(span.entity, text[span.start : span.end]) for span in spans] == found


def test_a_masking_never_shows_its_values() -> None:
    text, masking = redaction.mask("ada@example.com", ["email"])
    assert text == "<EMAIL_1>"
    assert "ada" not in repr(masking) and "ada" not in str(masking)
    assert masking.restore({"a": ["<EMAIL_1>", "<EMAIL_9>"]}) == {
        "a": ["ada@example.com", "<EMAIL_9>"]
    }


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("ada.lovelace+crm@example.co.uk", "<EMAIL_1>"),
        ("jürgen@bücher.de", "<EMAIL_1>"),
        ("ada at example dot com", "ada at example dot com"),
        ("+44 20 7946 0958, (415) 555-2671", "<PHONE_1>, <PHONE_2>"),
        ("call 415 555 0100 ext. 12", "call <PHONE_1>"),
        ("030 1234567", "030 1234567"),
        ("tel: 555-0100", "tel: 555-0100"),
        ("00 44 20 7946 0958", "00 44 20 7946 0958"),
        ("4111 1111 1111 1111 12/27", "<CARD_1> 12/27"),
        ("order 4111111111111112", "order 4111111111111112"),
        ("4111-1111-1111-111", "4111-1111-1111-111"),
        ("DE89 3704 0044 0532 0130 00", "<IBAN_1>"),
        ("account 0532013000, BLZ 37040044", "account 0532013000, BLZ 37040044"),
        ("SSN: 078051120, 078-05-1120", "SSN: <SSN_1>, <SSN_2>"),
        ("078051120", "078051120"),
        ("192.168.10.24, 2001:db8::8a2e:370:7334", "<IP_1>, <IP_2>"),
        ("10.0.0.0/8", "<IP_1>/8"),
        ("version 1.2.3.4", "version <IP_1>"),
        ("2026-01-15 12:30:45", "2026-01-15 12:30:45"),
        ("Ada Lovelace, 12 Baker Street", "Ada Lovelace, 12 Baker Street"),
    ],
)
def test_the_documented_catches_and_misses(text: str, sent: str) -> None:
    """The table in docs/tenants.md#privacy (and the issue's note): keep them in step."""
    assert redaction.mask(text, redaction.BUILTIN_TYPES)[0] == sent


@register
class StoreContact(AIFunction):
    """Redacts, restores, and whose write fails the way a unique column would."""

    name = "test_redaction_store_contact"
    redact_pii = True
    restore_pii = True

    def build_prompt(self, data: Any) -> str:
        return f"Contact: {data['contact']}"

    def save_output(self, parsed: Any, data: Any) -> None:
        raise IntegrityError(f'duplicate key value violates unique constraint: "{parsed}"')


def test_a_failed_write_of_a_restored_answer_quotes_no_value(answering, caplog):
    answering.reply_text = "Saved <EMAIL_1>"
    job = run_ai_task(StoreContact.name, {"contact": "ada@example.com"}, sync=True)
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.INTERNAL)
    assert "RestoredWriteFailed" in job.error and "IntegrityError" in job.error
    assert "ada@example.com" not in job.error
    assert "ada@example.com" not in caplog.text
    assert "ada@example.com" not in user_message(answering.last_request)


@pytest.mark.parametrize("regions", [["US", "XX"], "US"])
def test_unknown_phone_regions_are_a_system_check_error(settings, regions: Any) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, "PII_PHONE_REGIONS": regions}
    assert "django_ai_fields.E032" in [e.id for e in check_installation()]
    settings.AI_FIELDS = {**settings.AI_FIELDS, "PII_PHONE_REGIONS": ["us", "DE"]}
    assert "django_ai_fields.E032" not in [e.id for e in check_installation()]
