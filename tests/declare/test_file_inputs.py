"""Images and files as inputs (``inputs=["image"]``): what each provider API is sent
(recorded bodies of the fake provider), the limits, and uploads as trigger changes."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.test.utils import isolate_apps
from PIL import Image

from django_ai_fields.api import regenerate
from django_ai_fields.fields import AIGeneratedField
from django_ai_fields.models import AIJob, AIUsage, ErrorCode, Status
from tests.fake_provider import FakeProvider, Usage
from tests.testapp.models import Poster

pytestmark = pytest.mark.django_db(transaction=True)

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def png(width: int = 4, height: int = 3, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def configure(settings: Any, **values: Any) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def poster_with_image(data: bytes, name: str = "logo.png", **values: Any) -> Poster:
    poster = Poster(title="Spring fair", **values)
    poster.image.save(name, ContentFile(data), save=False)
    poster.save()
    return poster


def alt_text_job() -> AIJob:
    return AIJob.objects.get(field_name="alt_text")


def user_content(fp: FakeProvider) -> Any:
    body = fp.last_request.body
    if "input" in body:
        return body["input"][0]["content"]
    return body["messages"][-1]["content"]


# -- what each provider API is sent ------------------------------------------------------


def test_an_image_goes_to_chat_completions_as_a_base64_data_url(fake_provider, worker):
    data = png()
    fake_provider.usage = Usage(input_tokens=120, output_tokens=8)
    fake_provider.reply_text = "A red square"
    poster = poster_with_image(data)
    worker.drain()
    content = user_content(fake_provider)
    assert content[0]["type"] == "text" and "Spring fair" in content[0]["text"]
    assert content[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()},
    }
    poster.refresh_from_db()
    assert poster.alt_text == "A red square"
    # Image tokens are counted in the input tokens the provider reports.
    usage = AIUsage.objects.get(job__field_name="alt_text")
    assert usage.input_tokens == 120


def test_an_image_goes_to_the_responses_api_as_input_image(fake_provider, worker, settings):
    providers = dict(settings.AI_FIELDS["PROVIDERS"])
    providers["openai"] = {**providers["openai"], "API": "responses"}
    configure(settings, PROVIDERS=providers)
    data = png()
    poster_with_image(data)
    worker.drain()
    assert fake_provider.last_request.path == "/v1/responses"
    content = user_content(fake_provider)
    assert content[0]["type"] == "input_text"
    assert content[1] == {
        "type": "input_image",
        "image_url": "data:image/png;base64," + base64.b64encode(data).decode(),
        "detail": "auto",
    }
    assert alt_text_job().status == Status.SUCCEEDED


def test_an_image_goes_to_anthropic_as_a_base64_image_block(fake_provider, worker, settings):
    configure(settings, DEFAULT_PROVIDER="anthropic")
    data = png()
    poster_with_image(data)
    worker.drain()
    assert fake_provider.last_request.path == "/v1/messages"
    content = user_content(fake_provider)
    assert content[0] == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(data).decode(),
        },
    }
    assert content[1]["type"] == "text"


def test_a_pdf_goes_as_a_file_part_and_an_anthropic_document(fake_provider, settings):
    poster = Poster.objects.create(title="Fair")
    poster.leaflet.save("leaflet.pdf", ContentFile(PDF_BYTES))
    encoded = base64.b64encode(PDF_BYTES).decode()
    regenerate(poster, "leaflet_summary", sync=True)
    assert user_content(fake_provider)[1] == {
        "type": "file",
        "file": {
            "filename": poster.leaflet.name.rsplit("/", 1)[-1],
            "file_data": "data:application/pdf;base64," + encoded,
        },
    }
    configure(settings, DEFAULT_PROVIDER="anthropic")
    regenerate(poster, "leaflet_summary", sync=True)
    assert user_content(fake_provider)[0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": encoded},
    }


def test_an_empty_file_field_sends_the_prompt_alone(fake_provider):
    poster = Poster.objects.create(title="No image")
    regenerate(poster, "alt_text", sync=True)
    assert isinstance(user_content(fake_provider), str)


def test_the_offline_provider_answers_images_deterministically(settings, worker):
    configure(settings, DEFAULT_PROVIDER="offline")
    first = poster_with_image(png(color="red"))
    second = poster_with_image(png(color="blue"))
    worker.drain()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.alt_text.startswith("Spring fair: a 4x3 PNG image (")
    assert first.alt_text != second.alt_text
    assert regenerate(first, "alt_text", sync=True).output == first.alt_text


# -- limits --------------------------------------------------------------------------------


def test_a_file_over_the_byte_limit_fails_bad_request_without_being_read(
    fake_provider, worker, settings, monkeypatch
):
    configure(settings, INPUT_MAX_BYTES=100)
    poster = poster_with_image(png(64, 64) + b"\0" * 200)

    def never_open(self: Any, name: str, mode: str = "rb") -> Any:
        raise AssertionError(f"{name} was opened")

    monkeypatch.setattr(FileSystemStorage, "_open", never_open)
    worker.drain()
    job = alt_text_job()
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.BAD_REQUEST)
    assert "more than INPUT_MAX_BYTES (100)" in job.error
    assert poster.image.name in job.error
    assert fake_provider.calls == 0


def test_an_image_over_the_pixel_limit_fails_bad_request(fake_provider, worker, settings):
    configure(settings, INPUT_MAX_PIXELS=100)
    poster_with_image(png(20, 10))
    worker.drain()
    job = alt_text_job()
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.BAD_REQUEST)
    assert "20x10 pixels, more than INPUT_MAX_PIXELS (100)" in job.error
    assert fake_provider.calls == 0


def test_the_content_type_comes_from_the_bytes_not_the_name(fake_provider, worker):
    poster_with_image(b"<html>not an image</html>", name="fake.png")
    worker.drain()
    job = alt_text_job()
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.BAD_REQUEST)
    assert "is an unknown type; allowed: image/png" in job.error
    assert fake_provider.calls == 0


def test_a_pdf_is_refused_where_the_setting_allows_images_only(fake_provider, settings):
    configure(settings, INPUT_CONTENT_TYPES=["image/png"])
    poster = Poster.objects.create(title="Fair")
    poster.leaflet.save("leaflet.pdf", ContentFile(PDF_BYTES))
    job = regenerate(poster, "leaflet_summary", sync=True)
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.BAD_REQUEST)
    assert "is application/pdf; allowed: image/png" in job.error


# -- change detection -------------------------------------------------------------------


def test_a_new_upload_is_a_trigger_change_and_a_plain_save_is_not(fake_provider, worker):
    poster = poster_with_image(png())
    worker.drain()
    assert fake_provider.calls == 1
    poster = Poster.objects.get(pk=poster.pk)
    poster.title = poster.title  # unchanged
    poster.save()
    worker.drain()
    assert fake_provider.calls == 1
    poster.image.save("other.png", ContentFile(png(color="green")))
    worker.drain()
    assert fake_provider.calls == 2
    assert AIJob.objects.filter(field_name="alt_text").count() == 2


def test_an_upload_under_the_same_name_is_a_trigger_change(fake_provider, worker):
    poster = poster_with_image(png(), name="same.png")
    worker.drain()
    name = poster.image.name
    poster = Poster.objects.get(pk=poster.pk)
    poster.image.storage.delete(name)  # the storage hands out the same name again
    # As a ModelForm assigns an upload: the file is written by the row's save.
    poster.image = ContentFile(png(color="blue"), name="same.png")
    poster.save()
    assert poster.image.name == name
    worker.drain()
    assert fake_provider.calls == 2
    sent = user_content(fake_provider)[1]["image_url"]["url"]
    assert sent.endswith(base64.b64encode(png(color="blue")).decode())


def test_loading_rows_reads_no_file(fake_provider, monkeypatch):
    Poster.objects.create(title="A", image="posters/missing.png")

    def no_storage(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the storage was asked")

    monkeypatch.setattr(FileSystemStorage, "size", no_storage)
    monkeypatch.setattr(FileSystemStorage, "_open", no_storage)
    poster = Poster.objects.get()
    poster.title = "B"
    poster.save()
    assert list(Poster.objects.values_list("title", flat=True)) == ["B"]


# -- system checks ------------------------------------------------------------------------


@isolate_apps("tests.testapp")
def test_inputs_must_name_file_fields_that_are_not_excluded() -> None:
    class Bad(models.Model):
        title = models.CharField(max_length=10)
        photo = models.ImageField(blank=True)
        text = AIGeneratedField(
            prompt="Describe {title}.",
            inputs=["title", "nothing", "photo"],
            excluded_fields=["photo"],
            blank=True,
            null=True,
        )

        class Meta:
            app_label = "testapp"

    ids = [message.id for message in Bad._meta.get_field("text").check()]
    assert ids.count("django_ai_fields.E141") == 2
    assert "django_ai_fields.E142" in ids
