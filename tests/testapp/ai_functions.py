"""AI functions the test suite runs (discovered at start-up, workers included)."""

from django_ai_fields.declare.prompts import fence
from django_ai_fields.functions import AIFunction, Cancelled, register

from .models import PlainLead


@register
class ExtractLead(AIFunction):
    """Create a lead row from a free-text description (structured output)."""

    name = "extract_lead"
    json_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "company": {"type": "string"}},
        "required": ["name", "company"],
    }

    def prepare(self, payload, tenant):
        if not payload.get("description"):
            raise ValueError("A description is required.")
        if payload.get("skip"):
            raise Cancelled("Nothing to extract.")
        return payload["description"]

    def build_prompt(self, description):
        return f"Extract the lead from this text: {fence(description, 'description')}"

    def save_output(self, parsed, description):
        PlainLead.objects.create(name=parsed["name"], company=parsed["company"], notes=description)


@register
class TagMany(AIFunction):
    """A list payload with an item limit; answers plain text."""

    name = "tag_many"
    max_items = 3
    system_message = "Return one tag."

    def build_prompt(self, items):
        return "Tag these: " + fence(", ".join(items))


@register
class StreamFacts(AIFunction):
    """A streamed JSON answer: the text so far shows on the job while it runs."""

    name = "stream_facts"
    stream = True
    json_schema = {
        "type": "object",
        "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
        "required": ["facts"],
    }

    def build_prompt(self, topic):
        return f"List facts about {fence(topic, 'topic')}"
