"""The admin's side of values over time: the *Review AI proposals* page (tenant-scoped),
the mixin's "AI value" list filter, the "only stale" regenerate, and the history on a
row's change page with its revert."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from django_ai_fields import api
from django_ai_fields.fields import get_ai_field
from django_ai_fields.models import AIJob, Status
from tests.surfaces import make_user, scoped  # noqa: F401  (fixture)
from tests.testapp.models import Lead, Offer
from tests.values.support import latest, offer_answers
from tests.values.test_staleness import changed

pytestmark = pytest.mark.django_db(transaction=True)

REVIEW = "/admin/django_ai_fields/aiproposal/"
LEADS = "/admin/testapp/lead/"
REVIEWER_PERMS = (
    "django_ai_fields.view_aiproposal",
    "django_ai_fields.change_aiproposal",
    "testapp.change_offer",
)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def post_action(client: Client, path: str, name: str, pks: list[int], **extra: str) -> Any:
    data = {"action": name, "_selected_action": pks, **extra}
    return client.post(path, data, follow=True)


@pytest.fixture
def offers(fake_provider, worker, settings) -> dict[str, Offer]:
    """Two tenants' offers (tenant = shop), their pitch and tier proposals waiting."""
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",
    }
    offer_answers(fake_provider)
    made = {
        shop: Offer.objects.create(shop=shop, title=f"{shop} seats", notes="Wants 20 seats")
        for shop in ("acme", "globex")
    }
    worker.drain()
    return made


def rows_shown(html: str) -> int:
    return html.count('class="action-select"')


def test_the_review_page_shows_each_proposal_beside_the_current_value(offers):
    root = client_for(make_user("root", superuser=True))
    acme = offers["acme"]
    Offer.objects.filter(pk=acme.pk).update(pitch="the old pitch")  # a value to replace
    html = root.get(REVIEW).content.decode()
    assert "Review AI proposals" in html
    assert rows_shown(html) == 4  # pitch and tier of two offers
    pattern = rf'testapp.offer #{acme.pk}</a></td><td class="field-field_name">pitch<.*?</tr>'
    row = re.search(pattern, html, re.S).group(0)  # type: ignore[union-attr]
    assert '<span class="ai-current">the old pitch</span>' in row
    assert '<span class="ai-proposal">pitch 1</span>' in row


def test_bulk_accept_writes_every_selected_proposal(offers):
    root = client_for(make_user("root", superuser=True))
    waiting = AIJob.objects.filter(status=Status.IN_REVIEW)
    response = post_action(root, REVIEW, "accept_proposals", [job.pk for job in waiting])
    assert "4 proposal(s) accepted and written." in messages_of(response)
    assert {(o.pitch, o.tier) for o in Offer.objects.all()} == {("pitch 1", "gold")}
    assert set(AIJob.objects.filter(field_name="pitch").values_list("reviewed_by", flat=True)) == {
        "root"
    }
    assert rows_shown(root.get(REVIEW).content.decode()) == 0


def test_a_proposal_edited_on_its_page_is_validated_then_written(offers):
    root = client_for(make_user("root", superuser=True))
    job = latest(offers["acme"], "tier")
    page = f"{REVIEW}{job.pk}/change/"
    html = root.get(page).content.decode()
    assert '<pre class="ai-proposal">gold</pre>' in html
    assert "One of: gold, silver, bronze" in html
    refused = root.post(page, {"value": "platinum", "_accept": "Accept"})
    assert "is not one of the allowed choices" in refused.content.decode()
    assert Offer.objects.get(pk=offers["acme"].pk).tier is None
    written = root.post(page, {"value": "bronze", "_accept": "Accept"}, follow=True)
    assert "The value was written." in messages_of(written)
    assert Offer.objects.get(pk=offers["acme"].pk).tier == "bronze"


def test_a_proposal_rejected_on_its_page_leaves_the_row(offers):
    root = client_for(make_user("root", superuser=True))
    job = latest(offers["acme"], "pitch")
    root.post(f"{REVIEW}{job.pk}/change/", {"value": "pitch 1", "_reject": "Reject"})
    job.refresh_from_db()
    assert (job.status, job.reviewed_by) == (Status.CANCELLED, "root")
    assert Offer.objects.get(pk=offers["acme"].pk).pitch is None


def test_a_tenant_bound_reviewer_sees_and_accepts_only_its_tenants_proposals(
    offers,
    scoped,  # noqa: F811
):
    ann = client_for(make_user("acme-ann", *REVIEWER_PERMS))
    html = ann.get(REVIEW).content.decode()
    assert rows_shown(html) == 2
    assert f"testapp.offer #{offers['globex'].pk}" not in html
    theirs = latest(offers["globex"], "pitch")
    assert ann.get(f"{REVIEW}{theirs.pk}/change/").status_code == 302  # "doesn't exist"
    ann.post(f"{REVIEW}{theirs.pk}/change/", {"value": "mine now", "_accept": "Accept"})
    everything = AIJob.objects.filter(status=Status.IN_REVIEW)
    post_action(ann, REVIEW, "accept_proposals", [job.pk for job in everything])
    assert Offer.objects.get(pk=offers["acme"].pk).pitch == "pitch 1"
    assert Offer.objects.get(pk=offers["globex"].pk).pitch is None
    assert latest(offers["globex"], "pitch").status == Status.IN_REVIEW


def test_accepting_needs_the_change_permission_of_the_rows_model(offers):
    viewer = client_for(
        make_user("vic", "django_ai_fields.view_aiproposal", "django_ai_fields.change_aiproposal")
    )
    job = latest(offers["acme"], "pitch")
    response = post_action(viewer, REVIEW, "accept_proposals", [job.pk])
    assert f"Proposal #{job.pk}: you may not change rows of its model" in messages_of(response)
    assert Offer.objects.get(pk=offers["acme"].pk).pitch is None
    nobody = client_for(make_user("nina"))
    assert nobody.get(REVIEW).status_code == 403


# -- the mixin on a project's own ModelAdmin --------------------------------------------------


def leads_in_every_state(worker: Any) -> dict[str, Lead]:
    """Lead summaries: current, stale (made under the old prompt), edited, empty, failed."""
    leads = {
        name: Lead.objects.create(name=name, company="Acme", notes="n")
        for name in ("current", "stale", "edited", "failed")
    }
    worker.drain()  # the offline provider answers
    Lead.objects.bulk_create([Lead(name="empty")])
    edited = Lead.objects.get(pk=leads["edited"].pk)
    edited.summary = "By hand"
    edited.save()
    answer = latest(leads["failed"], "summary")  # a later attempt at a fresh value failed:
    AIJob.objects.create(  # its value is still the old answer
        content_type=answer.content_type,
        object_id=answer.object_id,
        field_name="summary",
        status=Status.FAILED,
    )
    return leads


def names_listed(response: Any) -> list[str]:
    return re.findall(r'field-name">(?:<a [^>]*>)?(\w+)<', response.content.decode())


def test_the_ai_value_filter_selects_each_state(worker):
    root = client_for(make_user("root", superuser=True))
    leads = leads_in_every_state(worker)
    summary = get_ai_field(Lead, "summary")
    with changed(summary, prompt="Summarize {name} at {company} briefly. {*}"):
        api.regenerate(leads["current"], "summary", sync=True)
        shown = {
            state: sorted(names_listed(root.get(LEADS, {"ai_value_summary": state})))
            for state in ("current", "stale", "empty", "edited", "failed", "in_review")
        }
    assert shown == {
        "current": ["current"],
        "stale": ["failed", "stale"],  # failed: its value is the answer to the old prompt
        "empty": ["empty"],
        "edited": ["edited"],
        "failed": ["failed"],
        "in_review": [],
    }


def test_regenerate_only_the_stale_values_of_the_selection(worker):
    root = client_for(make_user("root", superuser=True))
    leads = leads_in_every_state(worker)
    summary = get_ai_field(Lead, "summary")
    pks = [lead.pk for lead in leads.values()]
    with changed(summary, prompt="Summarize {name} at {company} briefly. {*}"):
        api.regenerate(leads["current"], "summary", sync=True)
        page = post_action(root, LEADS, "regenerate_ai_field_summary", pks).content.decode()
        assert "2 of these values are stale" in page  # stale and failed (an old answer)
        page = post_action(
            root, LEADS, "regenerate_ai_field_summary", pks, only_stale="yes"
        ).content.decode()
        assert "This requests 2 AI jobs for 2 row(s)" in page
        before = AIJob.objects.count()
        response = post_action(
            root, LEADS, "regenerate_ai_field_summary", pks, only_stale="yes", confirm="yes"
        )
    assert "2 AI jobs requested" in " ".join(messages_of(response))
    requested = AIJob.objects.order_by("pk")[before:]
    assert {job.object_id for job in requested} == {
        str(leads["stale"].pk),
        str(leads["failed"].pk),
    }


def test_the_change_page_shows_the_history_and_reverts_to_an_earlier_value(worker):
    root = client_for(make_user("root", superuser=True))
    lead = Lead.objects.create(name="Ada", company="Acme", notes="n")
    worker.drain()
    first = Lead.objects.get(pk=lead.pk).summary
    edited = Lead.objects.get(pk=lead.pk)
    edited.summary = "By hand"
    edited.save()
    html = root.get(f"{LEADS}{lead.pk}/change/").content.decode()
    assert "AI values: history" in html
    # summary: the edit and the answer; heat and profile: their answer
    assert html.count('class="ai-history-entry"') == 4
    assert html.count("Revert to this") == 1  # the current value needs none
    job = api.history(lead, "summary")[-1].job
    response = root.post(
        f"{LEADS}{lead.pk}/ai-revert/", {"field": "summary", "job": job.pk}, follow=True
    )
    assert f"holds the value of AI job #{job.pk} again" in " ".join(messages_of(response))
    assert Lead.objects.get(pk=lead.pk).summary == first
    assert api.history(lead, "summary")[0].source == "revert"
