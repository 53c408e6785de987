"""Real models (issue 13): multi-table inheritance, related fields in prompts, chained
AI fields, hand edits, and the row deleted while its call is in flight.

Provider calls go through the real openai SDK to the fake provider server; what the
provider received is asserted on its recorded bodies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from django_ai_fields.api import latest_job, regenerate
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, Status
from tests.fake_provider import FakeProvider, RecordedRequest
from tests.testapp.models import Author, Pitch, Place, Post, Restaurant, Tag

pytestmark = pytest.mark.django_db(transaction=True)

BADGE = Template('{% load ai_fields %}{% ai_status obj "blurb" %}')


def user_text(request: RecordedRequest) -> str:
    return str(request.body["messages"][1]["content"])


def field_of(request: RecordedRequest) -> str:
    system = request.body["messages"][0]["content"]
    return re.search(r'field "([^"]+)"', system).group(1)  # type: ignore[union-attr]


def fields_called(fp: FakeProvider) -> list[str]:
    return [field_of(r) for r in fp.provider_requests]


def answer(fp: FakeProvider, reply: Callable[[str, RecordedRequest], str]) -> None:
    fp.responder = lambda request: reply(field_of(request), request)


def jobs_of(obj: Any, field_name: str) -> list[AIJob]:
    return list(AIJob.objects.filter(object_id=str(obj.pk), field_name=field_name).order_by("pk"))


def table_queries(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"]]


# -- 1. multi-table inheritance -------------------------------------------------------


def test_parent_and_child_saves_coalesce_into_one_job_and_one_call(fake_provider, worker):
    with transaction.atomic():
        restaurant = Restaurant.objects.create(name="Chez Ada", city="Paris", cuisine="french")
        place = Place.objects.get(pk=restaurant.pk)
        place.city = "Lyon"
        place.save()
    (job,) = jobs_of(restaurant, "blurb")
    assert job.content_type == ContentType.objects.get_for_model(Place)
    worker.drain()
    assert sorted(fields_called(fake_provider)) == ["blurb", "menu idea"]
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert "Lyon" in user_text(fake_provider.provider_requests[0]) + user_text(
        fake_provider.provider_requests[1]
    )


def test_the_badge_and_latest_job_are_found_from_parent_and_child(fake_provider, worker):
    restaurant = Restaurant.objects.create(name="Chez Ada", city="Paris", cuisine="french")
    worker.drain()
    place = Place.objects.get(pk=restaurant.pk)
    for obj in (place, restaurant):
        assert "Generated" in BADGE.render(Context({"obj": obj}))
        assert latest_job(obj, "blurb") == jobs_of(restaurant, "blurb")[0]
    assert Place.objects.get(pk=restaurant.pk).blurb == place.blurb is not None


def test_a_save_through_the_parent_regenerates_the_childs_dependent_field(fake_provider, worker):
    restaurant = Restaurant.objects.create(name="Chez Ada", city="Paris", cuisine="french")
    worker.drain()
    place = Place.objects.get(pk=restaurant.pk)
    place.name = "Chez Grace"
    with CaptureQueriesContext(connection) as queries:
        place.save()
    # One query finds the child row; the child's field gets its own job.
    assert len([q for q in table_queries(queries, "testapp_restaurant") if "SELECT" in q]) == 1
    assert [j.triggered_by for j in jobs_of(restaurant, "menu_idea")] == ["create", "save"]
    worker.drain()
    # The parent's and the child's jobs run concurrently (one drain): find the child's call.
    (menu_call,) = [
        r
        for r in fake_provider.provider_requests
        if "signature dish" in user_text(r) and "Chez Grace" in user_text(r)
    ]
    restaurant.refresh_from_db()
    assert restaurant.menu_idea == f"fake reply #{menu_call.call_number}"


def test_a_parent_save_no_child_field_depends_on_loads_no_child_row(fake_provider, worker):
    restaurant = Restaurant.objects.create(name="Chez Ada", city="Paris", cuisine="french")
    worker.drain()
    place = Place.objects.get(pk=restaurant.pk)
    place.city = "Lyon"  # blurb reads it, menu_idea does not
    with CaptureQueriesContext(connection) as queries:
        place.save()
    assert table_queries(queries, "testapp_restaurant") == []
    assert len(jobs_of(restaurant, "menu_idea")) == 1


# -- 2. related fields in prompts ---------------------------------------------------------


def tagged_post(*labels: str, author: str = "Ann", **values: Any) -> Post:
    with transaction.atomic():
        post = Post.objects.create(
            title="Hello", author=Author.objects.create(name=author), **values
        )
        post.tags.add(*[Tag.objects.create(label=label) for label in labels])
    return post


def test_foreign_key_and_many_to_many_render_as_str_in_pk_order(fake_provider, worker):
    post = tagged_post("beta", "alpha")  # beta gets the smaller pk
    (job,) = jobs_of(post, "teaser")
    with CaptureQueriesContext(connection) as queries:
        assert run_job(job.pk) == Status.SUCCEEDED
    text = user_text(fake_provider.last_request)
    assert '<data field="author">Ann</data>' in text
    assert '<data field="tags">beta, alpha</data>' in text
    # The author is joined into the row's query; the tags cost one query.
    assert not [q for q in table_queries(queries, "testapp_author") if "JOIN" not in q]
    assert len(table_queries(queries, "testapp_post_tags")) == 1
    post.refresh_from_db()
    assert post.teaser == "fake reply #1"


def test_all_fields_placeholder_lists_foreign_keys_and_many_to_many(fake_provider):
    post = tagged_post("alpha", "beta")
    regenerate(post, "digest", sync=True)
    text = user_text(fake_provider.last_request)
    assert "Title: Hello\nAuthor: Ann\nTags: alpha, beta" in text
    assert "Teaser" not in text  # AI fields stay out of {*}


@pytest.mark.parametrize(
    "change",
    [
        lambda post, tag: post.tags.add(tag),
        lambda post, tag: post.tags.remove(post.tags.first()),
        lambda post, tag: post.tags.set([tag]),
        lambda post, tag: post.tags.clear(),
        lambda post, tag: tag.posts.add(post),
        lambda post, tag: post.tags.first().posts.clear(),
    ],
    ids=["add", "remove", "set", "clear", "reverse-add", "reverse-clear"],
)
def test_a_many_to_many_change_regenerates(fake_provider, worker, change):
    post = tagged_post("alpha")
    worker.drain()
    tag = Tag.objects.create(label="gamma")
    change(Post.objects.get(pk=post.pk), tag)
    # The create's job (reused by the tags' add in the same transaction) and a new one.
    assert [j.triggered_by for j in jobs_of(post, "teaser")] == ["m2m", "m2m"]
    worker.drain()
    expected = ", ".join(t.label for t in Post.objects.get(pk=post.pk).tags.order_by("pk"))
    assert f'<data field="tags">{expected}</data>' in user_text(fake_provider.last_request)
    assert jobs_of(post, "teaser")[-1].status == Status.SUCCEEDED


def test_a_backfill_chunk_loads_rows_and_relations_in_bulk(fake_provider):
    posts = [tagged_post("alpha", "beta", author=f"Author {n}") for n in range(5)]
    AIJob.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        jobs = regenerate(Post.objects.all(), "teaser", sync=True)
    assert {j.status for j in jobs} == {Status.SUCCEEDED}
    post_selects = [q for q in table_queries(queries, "testapp_post") if q.startswith("SELECT")]
    assert len(post_selects) == 2  # the queryset, then the chunk's rows with their authors
    assert not [q for q in table_queries(queries, "testapp_author") if "JOIN" not in q]
    tag_loads = [q for q in table_queries(queries, "testapp_tag") if q.startswith("SELECT")]
    assert len(tag_loads) == 2  # all rows' tags at once: for the input hashes, for the prompts
    texts = sorted(user_text(r) for r in fake_provider.provider_requests)
    assert [f"Author {n}" in t for n, t in enumerate(texts)] == [True] * len(posts)


# -- 3. chained AI fields --------------------------------------------------------------------


def chain_answers(fp: FakeProvider, round_: list[int]) -> None:
    """summary/headline/tweet answers that change whenever round_[0] does."""
    answer(fp, lambda field, request: f"{field} {round_[0]} #{request.call_number}")


def test_a_chain_of_three_is_generated_in_order_and_again_after_a_change(fake_provider, worker):
    round_ = [1]
    chain_answers(fake_provider, round_)
    pitch = Pitch.objects.create(notes="Sells shoes")
    assert [j.field_name for j in AIJob.objects.all()] == ["summary"]  # nothing to chain yet
    worker.drain()
    assert fields_called(fake_provider) == ["summary", "headline", "tweet"]
    pitch.refresh_from_db()
    assert pitch.summary in user_text(fake_provider.provider_requests[1])
    assert pitch.headline in user_text(fake_provider.provider_requests[2])
    assert pitch.tweet.startswith("tweet 1")

    round_[0] = 2
    pitch.notes = "Sells boots"
    pitch.save()
    worker.drain()
    assert fields_called(fake_provider)[3:] == ["summary", "headline", "tweet"]
    pitch.refresh_from_db()
    assert (pitch.summary[:9], pitch.headline[:10], pitch.tweet[:7]) == (
        "summary 2",
        "headline 2",
        "tweet 2",
    )
    assert {j.triggered_by for j in AIJob.objects.filter(field_name="tweet")} == {"chain"}


def test_a_chain_of_two_follows_its_source_and_nothing_upstream(fake_provider, worker):
    round_ = [1]
    chain_answers(fake_provider, round_)
    pitch = Pitch.objects.create(notes="Sells shoes")
    worker.drain()
    round_[0] = 2
    regenerate(pitch, "headline", sync=True)  # headline -> tweet
    worker.drain()
    assert fields_called(fake_provider)[3:] == ["headline", "tweet"]
    pitch.refresh_from_db()
    assert pitch.headline in user_text(fake_provider.last_request)
    assert (pitch.summary[:9], pitch.tweet[:7]) == ("summary 1", "tweet 2")


def test_a_source_rewritten_with_the_same_value_regenerates_nothing(fake_provider, worker):
    answer(fake_provider, lambda field, request: f"same {field}")
    pitch = Pitch.objects.create(notes="Sells shoes")
    worker.drain()
    assert fake_provider.calls == 3
    regenerate(pitch, "summary", sync=True)
    worker.drain()
    assert fields_called(fake_provider) == ["summary", "headline", "tweet", "summary"]


# -- 4. hand edits ------------------------------------------------------------------------------


def generated_pitch(fp: FakeProvider, worker: Any) -> Pitch:
    chain_answers(fp, [1])
    pitch = Pitch.objects.create(notes="Sells shoes")
    worker.drain()
    return Pitch.objects.get(pk=pitch.pk)


def test_a_hand_edit_is_kept_when_a_trigger_changes_until_an_explicit_regenerate(
    fake_provider, worker
):
    pitch = generated_pitch(fake_provider, worker)
    pitch.summary = "Written by a person"
    pitch.save()
    record = jobs_of(pitch, "summary")[-1]
    assert (record.triggered_by, record.status, record.output) == (
        "manual",
        Status.SUCCEEDED,
        "Written by a person",
    )
    assert "Edited by hand" in Template('{% load ai_fields %}{% ai_status obj "summary" %}').render(
        Context({"obj": pitch})
    )
    worker.drain()  # the edit feeds the chain: headline (and tweet) follow it
    assert "Written by a person" in user_text(fake_provider.provider_requests[3])
    calls = fake_provider.calls

    pitch = Pitch.objects.get(pk=pitch.pk)
    pitch.notes = "Sells boots"
    pitch.save()
    worker.drain()
    assert fake_provider.calls == calls  # the person's summary is kept
    assert Pitch.objects.get(pk=pitch.pk).summary == "Written by a person"

    regenerate(pitch, "summary", sync=True)
    assert Pitch.objects.get(pk=pitch.pk).summary.startswith("summary 1")
    pitch = Pitch.objects.get(pk=pitch.pk)
    pitch.notes = "Sells sandals"
    pitch.save()
    assert jobs_of(pitch, "summary")[-1].triggered_by == "save"  # generated again from now on


def test_a_field_with_keep_manual_edits_false_is_regenerated_over_a_hand_edit(
    fake_provider, worker
):
    pitch = generated_pitch(fake_provider, worker)
    pitch.tweet = "My own tweet"
    pitch.save()
    assert not AIJob.objects.filter(triggered_by="manual").exists()
    pitch = Pitch.objects.get(pk=pitch.pk)
    pitch.headline = "A new headline"  # a hand edit of tweet's source
    pitch.save()
    worker.drain()
    assert Pitch.objects.get(pk=pitch.pk).tweet.startswith("tweet 1")


def test_a_hand_edit_during_the_call_is_not_overwritten(fake_provider, worker):
    pitch = Pitch.objects.create(notes="Sells shoes")

    def reply(field: str, request: RecordedRequest) -> str:
        try:
            Pitch.objects.filter(pk=pitch.pk).update(summary="Typed meanwhile")
        finally:
            connection.close()
        return "generated"

    answer(fake_provider, reply)
    worker.drain()
    assert Pitch.objects.get(pk=pitch.pk).summary == "Typed meanwhile"
    assert jobs_of(pitch, "summary")[0].status == Status.SUPERSEDED


# -- 6. the row deleted while its call is in flight ---------------------------------------------


def test_a_row_deleted_during_the_call_ends_cancelled(fake_provider, worker):
    pitch = Pitch.objects.create(notes="Sells shoes")

    def reply(field: str, request: RecordedRequest) -> str:
        try:
            Pitch.objects.filter(pk=pitch.pk).delete()
        finally:
            connection.close()
        return "generated"

    answer(fake_provider, reply)
    worker.drain()
    (job,) = jobs_of(pitch, "summary")
    assert (job.status, job.error) == (Status.CANCELLED, "The row was deleted.")


def test_ai_status_shows_the_chains_so_one_edit_making_three_calls_is_no_surprise():
    out = StringIO()
    with pytest.raises(CommandError):  # unhealthy: no worker runs in the test
        call_command("ai_status", "--no-providers", stdout=out)
    assert "  testapp.Pitch: summary -> headline -> tweet" in out.getvalue().splitlines()


def test_a_new_row_created_with_a_value_keeps_it(fake_provider, worker):
    pitch = Pitch.objects.create(notes="Sells shoes", summary="Given at creation")
    assert [j.triggered_by for j in jobs_of(pitch, "summary")] == ["manual"]
    worker.drain()  # only the chain below it runs
    assert fields_called(fake_provider) == ["headline", "tweet"]
    assert Pitch.objects.get(pk=pitch.pk).summary == "Given at creation"


def test_clearing_a_hand_edit_lets_the_field_follow_its_triggers_again(fake_provider, worker):
    pitch = Pitch.objects.create(notes="Sells shoes", summary="Given at creation")
    worker.drain()
    pitch = Pitch.objects.get(pk=pitch.pk)
    pitch.summary = ""
    pitch.notes = "Sells boots"
    pitch.save()
    assert jobs_of(pitch, "summary")[-1].triggered_by == "save"


def test_ai_regenerate_loads_many_to_many_triggers_once_per_page(fake_provider):
    for _ in range(4):
        tagged_post("alpha", "beta")
    AIJob.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        call_command("ai_regenerate", "testapp.Post", "--field", "teaser", stdout=StringIO())
    assert AIJob.objects.filter(field_name="teaser").count() == 4
    tag_loads = [q for q in table_queries(queries, "testapp_tag") if q.startswith("SELECT")]
    assert len(tag_loads) == 1
