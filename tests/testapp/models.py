"""Models the test suite exercises."""

import uuid
from decimal import Decimal

from django.db import models

from django_ai_fields.fields import AIGeneratedField, AIGeneratedJSONField

HEAT_CHOICES = [("hot", "Hot"), ("warm", "Warm"), ("cold", "Cold")]

PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "industry": {"type": "string"},
        "employees": {"type": "integer", "minimum": 0},
    },
    "required": ["industry", "employees"],
    "additionalProperties": False,
}


class Lead(models.Model):
    name = models.CharField(max_length=100)
    company = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    ssn = models.CharField(max_length=11, blank=True)
    score = models.IntegerField(default=0)

    summary = AIGeneratedField(
        prompt="Summarize the lead {name} at {company}. Record: {*}",
        excluded_fields=["ssn"],
        blank=True,
        null=True,
    )
    heat = AIGeneratedField(
        prompt="Classify this lead: {notes}",
        max_length=8,
        choices=HEAT_CHOICES,
        blank=True,
        null=True,
    )
    profile = AIGeneratedJSONField(
        prompt="Extract company facts: {notes}",
        schema=PROFILE_SCHEMA,
        blank=True,
        null=True,
    )

    def __str__(self) -> str:
        return self.name


class PlainLead(models.Model):
    """Lead without AI fields: the baseline for overhead comparisons."""

    name = models.CharField(max_length=100)
    company = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    ssn = models.CharField(max_length=11, blank=True)
    score = models.IntegerField(default=0)
    summary = models.TextField(blank=True, null=True)
    heat = models.CharField(max_length=8, blank=True, null=True)
    profile = models.JSONField(blank=True, null=True)


class Describable(models.Model):
    title = models.CharField(max_length=100)
    blurb = AIGeneratedField(prompt="Write a blurb for {title}.", blank=True, null=True)

    class Meta:
        abstract = True


class Article(Describable):
    """A concrete subclass of an abstract model with an AI field."""

    body = models.TextField(blank=True)


class Product(models.Model):
    """Explicit trigger_fields, a callable prompt, and a tenant column."""

    shop = models.CharField(max_length=50, blank=True)
    title = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    tags = models.JSONField(default=list, blank=True)

    tagline = AIGeneratedField(
        prompt=lambda product: f"Write a tagline for {product.title} priced {product.price}.",
        trigger_fields=["title", "price"],
        blank=True,
        null=True,
    )
    keywords = AIGeneratedJSONField(
        prompt="Keywords for {title} (tenant {tenant}), tags {tags}.",
        auto_regenerate=False,
        blank=True,
        null=True,
    )


class Survey(models.Model):
    """A JSON trigger field: an in-place mutation must count as a change."""

    answers = models.JSONField(default=dict, blank=True)

    digest = AIGeneratedField(prompt="Digest these answers: {answers}", blank=True, null=True)


class Memo(models.Model):
    """Money options declared on the field, so real worker processes see them too."""

    shop = models.CharField(max_length=50, blank=True)
    title = models.CharField(max_length=100)

    text = AIGeneratedField(
        prompt="Write a memo about {title}.",
        max_tokens=100,
        budget_usd=Decimal("0.0003"),
        cache_ttl=0,
        provider_options={"seed": 7, "reasoning_effort": "low"},
        blank=True,
        null=True,
    )


class Brief(models.Model):
    """A fixed max_tokens, so a call's worst case is known exactly."""

    shop = models.CharField(max_length=50, blank=True)
    title = models.CharField(max_length=100)

    text = AIGeneratedField(
        prompt="Write a brief about {title}.", max_tokens=100, cache_ttl=0, blank=True, null=True
    )


class Story(models.Model):
    """A streamed field: its text so far shows on the job while the job runs."""

    title = models.CharField(max_length=100)

    text = AIGeneratedField(
        prompt="Write a story about {title}.", stream=True, cache_ttl=0, blank=True, null=True
    )


class Place(models.Model):
    """Multi-table inheritance: the parent declares ``blurb``."""

    name = models.CharField(max_length=100)
    city = models.CharField(max_length=100, blank=True)

    blurb = AIGeneratedField(prompt="Describe {name} in {city}.", blank=True, null=True)

    def __str__(self) -> str:
        return self.name


class Restaurant(Place):
    """...and the child declares ``menu_idea`` from a parent field and its own."""

    cuisine = models.CharField(max_length=50, blank=True)

    menu_idea = AIGeneratedField(
        prompt="A signature dish for {name}, a {cuisine} restaurant.", blank=True, null=True
    )


class Author(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    label = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.label


class Post(models.Model):
    """Related fields in prompts: a foreign key and a many-to-many field."""

    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)
    tags = models.ManyToManyField(Tag, blank=True, related_name="posts")

    teaser = AIGeneratedField(
        prompt="Teaser for {title} by {author}, tagged {tags}.", blank=True, null=True
    )
    digest = AIGeneratedField(prompt="Digest of: {*}", auto_regenerate=False, blank=True, null=True)


class Pitch(models.Model):
    """Chained AI fields: notes -> summary -> headline -> tweet."""

    notes = models.TextField(blank=True)

    summary = AIGeneratedField(prompt="Summarize: {notes}", blank=True, null=True)
    headline = AIGeneratedField(prompt="Headline for: {summary}", blank=True, null=True)
    tweet = AIGeneratedField(
        prompt="Tweet for: {headline}", keep_manual_edits=False, blank=True, null=True
    )


class Poster(models.Model):
    """Files as inputs (an image, a PDF) and hosted tools (docs/fields.md, providers.md)."""

    title = models.CharField(max_length=100)
    image = models.ImageField(upload_to="posters/", blank=True)
    leaflet = models.FileField(upload_to="leaflets/", blank=True)

    alt_text = AIGeneratedField(
        prompt="Write the alt text of the poster {title}.",
        inputs=["image"],
        cache_ttl=0,
        blank=True,
        null=True,
    )
    leaflet_summary = AIGeneratedField(
        prompt="Summarize the leaflet of {title}.",
        inputs=["leaflet"],
        auto_regenerate=False,
        cache_ttl=0,
        blank=True,
        null=True,
    )
    research = AIGeneratedField(
        prompt="Find what is known about {title}.",
        tools=["web_search", {"type": "file_search", "vector_store_ids": ["vs_posters"]}],
        auto_regenerate=False,
        cache_ttl=0,
        blank=True,
        null=True,
    )


TIER_CHOICES = [("gold", "Gold"), ("silver", "Silver"), ("bronze", "Bronze")]
FACTS_SCHEMA = {
    "type": "object",
    "properties": {"seats": {"type": "integer", "minimum": 0}},
    "required": ["seats"],
    "additionalProperties": False,
}


class Offer(models.Model):
    """Review before write (docs/values.md): answers wait for a person's accept."""

    shop = models.CharField(max_length=50, blank=True)
    title = models.CharField(max_length=100)
    notes = models.TextField(blank=True)

    pitch = AIGeneratedField(
        prompt="Write a pitch for {title}: {notes}", review=True, blank=True, null=True
    )
    tier = AIGeneratedField(
        prompt="Which tier is {title}? {notes}",
        review=True,
        max_length=8,
        choices=TIER_CHOICES,
        blank=True,
        null=True,
    )
    facts = AIGeneratedJSONField(
        prompt="Facts about {title}: {notes}",
        review=True,
        schema=FACTS_SCHEMA,
        auto_regenerate=False,
        blank=True,
        null=True,
    )

    def __str__(self) -> str:
        return self.title


class Voucher(models.Model):
    """A UUID primary key: jobs name it as str(pk), hyphens included (values/states.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    code = models.CharField(max_length=20)

    blurb = AIGeneratedField(prompt="Describe the voucher {code}.", blank=True, null=True)



class Enrollment(models.Model):
    """A composite primary key (Django 5.2's CompositePrimaryKey): jobs name the row
    by its parts, a JSON array (django_ai_fields/row_keys.py)."""

    pk = models.CompositePrimaryKey("course", "student")
    course = models.CharField(max_length=40)
    student = models.IntegerField()
    note = models.CharField(max_length=100, blank=True)

    advice = AIGeneratedField(prompt="Advise on {course}: {note}", blank=True, null=True)


class Shipment(Describable):
    """A second model inheriting the abstract base's AI field (beside Article)."""

    weight = models.IntegerField(default=0)


class ArticleProxy(Article):
    """Saves through a proxy model."""

    class Meta:
        proxy = True


class LiveManager(models.Manager["Notice"]):
    """A default manager that hides archived rows: the worker must still find them."""

    def get_queryset(self) -> models.QuerySet["Notice"]:
        return super().get_queryset().filter(archived=False)


class Notice(models.Model):
    text = models.CharField(max_length=100)
    archived = models.BooleanField(default=False)

    gist = AIGeneratedField(prompt="The gist of {text}.", blank=True, null=True)

    objects = LiveManager()


from tests.testapp import alerts  # noqa: E402,F401  (connects the test receiver)
