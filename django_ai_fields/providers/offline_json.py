"""How the offline provider fills a JSON Schema from a record's text.

Each property is looked up by its name in the record: a field of that name
(``<data field="company">``, ``Company: …``), a number next to the name or a
synonym ("Team of 120 engineers" -> ``employees: 120``), the words after the name
("Interested in analytics and automation" -> ``interests``), or before it ("the
insurance industry" -> ``industry``). Required properties found nowhere get a
default; optional ones are left out. Local ``$ref``s are followed, and of an
``anyOf``/``oneOf`` the first option that is not null is filled. An answer that
does not validate after all falls back to the smallest instance of the schema.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from .offline_text import STOPWORDS, WORD, Record, pick_choice, stem, summary, word_set

# Other words for a property's name, by the stem of the name's words.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "employee": ("staff", "people", "person", "engineer", "developer", "worker", "headcount"),
    "headcount": ("staff", "people", "person", "employee", "engineer"),
    "size": ("staff", "people", "person", "employee"),
    "seat": ("licence", "license", "user"),
    "industry": ("sector",),
}
# Properties answered with a sentence of the record (a summary of it).
PROSE_NAMES = word_set("summary description note comment text body detail abstract message reason")
# Properties answered with a proper name from the text (capitalised words).
NAME_NAMES = word_set(
    "name company organization organisation person sender customer contact author employer "
    "firm business brand city country vendor"
)
COMPANY_NAMES = word_set("company organization organisation employer firm business vendor")
UNKNOWN = "unknown"
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CONNECTORS = word_set("in on of is are was include including with for about")
_ITEM_SPLIT = re.compile(r"\s*(?:,|;|&|/|\band\b|\bor\b)\s*")
_CAPITALISED = re.compile(r"\b[A-Z][\w&'-]*(?: +[A-Z][\w&'-]*)*")
_GREETING = re.compile(r"^(?:(?:Hi|Hello|Hey|Dear|Thanks|Regards|Best|Cheers)\b\s*)+")
# "industry: insurance", "industry is insurance" (a dot inside a word is kept).
_STATED = re.compile(r"\s*(?::|=|\bis\b|\bwas\b)\s*((?:[^.,;!?\n]|\.(?=\w))+)")
NEAR = 3  # words between a number and the name it belongs to
LOOK_AHEAD = 200  # characters read after (or before) a name for its value
MAX_DEPTH = 8  # nesting filled from the text (a recursive schema stops there)


def fill(schema: dict[str, Any], record: Record) -> Any:
    """A value for ``schema`` taken from ``record``, valid against the schema."""
    value = _Filler(record, schema).value(schema, "", required=True)
    try:
        valid = jsonschema.validators.validator_for(schema)(schema).is_valid(value)
    except Exception:  # a schema no validator can apply ($ref cycle): parsing will say why
        valid = False
    return value if valid else example_for_schema(schema)


class _Filler:
    def __init__(self, record: Record, root: dict[str, Any]):
        self.record = record
        self.root = root
        self.depth = 0
        self.text = record.text
        self.spans = [(m.end(), m.group(0)) for m in WORD.finditer(self.text)]
        self.tokens = [token for _end, token in self.spans]
        self.stems = [stem(token) for token in self.tokens]
        self.used: list[str] = []  # proper names already given to a property

    def value(self, schema: dict[str, Any], name: str, *, required: bool) -> Any:
        """The value for property ``name``; None when it is optional and not in the text."""
        schema = resolved(schema, self.root)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return pick_enum(schema["enum"], self.record)
        kind = kind_of(schema)
        self.depth += 1
        found = self.found(kind, schema, name) if self.depth <= MAX_DEPTH else None
        self.depth -= 1
        found = within_limits(found, schema)
        if found is None and required:
            return example_for_schema(schema, self.root)
        return found

    def found(self, kind: str, schema: dict[str, Any], name: str) -> Any:
        if kind == "object":
            return self.object(schema)
        if kind == "array":
            return self.array(schema, name)
        if kind in ("integer", "number"):
            return self.number(kind, name)
        if kind == "boolean":
            return self.flag(name)
        if kind == "string":
            return self.string(name, schema)
        return None

    def object(self, schema: dict[str, Any]) -> dict[str, Any]:
        required = set(schema.get("required", []))
        out = {}
        for name, sub in schema.get("properties", {}).items():
            value = self.value(sub, name, required=name in required)
            if name in required or value not in (None, {}, []):
                out[name] = value
        return out

    def array(self, schema: dict[str, Any], name: str) -> list[str] | None:
        """Strings listed after the name: "interested in analytics and automation"."""
        if items_of(schema).get("type") != "string" or not name:
            return None
        found = list(dict.fromkeys(self.after_name(name)))
        return found[: schema.get("maxItems")] or None

    def number(self, kind: str, name: str) -> int | float | None:
        """The number nearest to the property's name or a synonym of it."""
        names = name_stems(name)
        best: tuple[int, float] | None = None
        for i, token in enumerate(self.tokens):
            if not _NUMBER.fullmatch(token):
                continue
            around = range(max(0, i - NEAR), min(len(self.tokens), i + NEAR + 1))
            distances = [abs(j - i) for j in around if self.stems[j] in names]
            if distances and (best is None or min(distances) < best[0]):
                best = (min(distances), float(token.replace(",", "")))
        if best is None:
            return None
        return int(best[1]) if kind == "integer" else best[1]

    def flag(self, name: str) -> bool | None:
        """True when the name's words are in the text, not after "no" or "not"."""
        wanted = [stem(w) for w in split_name(name)]
        stems = self.stems
        for i in range(len(stems) - len(wanted) + 1) if wanted else ():
            if stems[i : i + len(wanted)] == wanted:
                return not (i and stems[i - 1] in ("no", "not", "never", "without"))
        return None

    def string(self, name: str, schema: dict[str, Any]) -> str | None:
        key = stem(split_name(name)[-1]) if name else ""
        for label, value in self.record.fields:
            if label and same_name(label, name):
                return value
        if not name or key in PROSE_NAMES:
            return summary(self.record, wanted=1, max_chars=schema.get("maxLength", 500))
        stated = self.stated(name)
        if stated:
            return stated
        if key in NAME_NAMES:
            return self.proper_name(company=key in COMPANY_NAMES)
        return self.before_name(name)

    def stated(self, name: str) -> str | None:
        """The value in "industry: insurance" or "industry is insurance"."""
        names = name_stems(name)
        for (end, _token), token_stem in zip(self.spans, self.stems, strict=True):
            if token_stem in names:
                said = _STATED.match(self.text[end : end + LOOK_AHEAD])
                if said and said.group(1).strip():
                    return without_article(said.group(1))
        return None

    def after_name(self, name: str) -> list[str]:
        """The items after the name, to the end of its clause."""
        names = name_stems(name)
        for (end, _token), token_stem in zip(self.spans, self.stems, strict=True):
            if token_stem not in names:
                continue
            clause = re.split(r"[.;!?\n]", self.text[end : end + LOOK_AHEAD], maxsplit=1)[0]
            tail = clause.lstrip(" :=").split()
            while tail and tail[0].lower() in _CONNECTORS:
                tail.pop(0)
            items = [without_article(part) for part in _ITEM_SPLIT.split(" ".join(tail))]
            items = [item for item in items if 0 < len(item.split()) <= 5]
            if items:
                return items
        return []

    def before_name(self, name: str) -> str | None:
        """The word just before the name ("the insurance industry" -> "insurance")."""
        names = name_stems(name)
        for i, token_stem in enumerate(self.stems[1:], start=1):
            previous = self.tokens[i - 1]
            is_word = previous.lower() not in STOPWORDS and not previous[0].isdigit()
            if token_stem in names and is_word:
                return previous.lower()
        return None

    def proper_name(self, *, company: bool) -> str | None:
        """The first capitalised words no other property took; for a company, those
        after "from" or "at" first, for a person the others first."""
        found = []
        for match in _CAPITALISED.finditer(self.text):
            name = _GREETING.sub("", match.group(0))
            before = self.text[max(0, match.start() - LOOK_AHEAD) : match.start()]
            sentence_start = not before.strip() or re.search(r"[.!?:\n]\s*$", before)
            if name and name not in self.used and not (sentence_start and " " not in name):
                found.append((bool(re.search(r"\b(?:from|at|of)\s+$", before)) != company, name))
        if not found:
            return None
        name = min(found, key=lambda pair: pair[0])[1]
        self.used.append(name)
        return name


def resolved(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a local ``$ref`` followed and an ``anyOf``/``oneOf``/``allOf``
    narrowed to one option (the first that is not null)."""
    for _ in range(MAX_DEPTH):  # a $ref cycle stops here
        ref, options = schema.get("$ref"), schema.get("anyOf") or schema.get("oneOf")
        if isinstance(ref, str) and ref.startswith("#"):
            schema = root
            for part in filter(None, ref[1:].split("/")):
                schema = schema.get(part.replace("~1", "/").replace("~0", "~"), {})
        elif options:
            schema = next((o for o in options if o.get("type") != "null"), options[0])
        elif len(schema.get("allOf", ())) == 1:
            schema = schema["allOf"][0]
        else:
            break
    return schema


def items_of(schema: dict[str, Any]) -> dict[str, Any]:
    """An array's item schema ({} for a tuple of item schemas, draft 4's form)."""
    items = schema.get("items", {})
    return items if isinstance(items, dict) else {}


def kind_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), "null")
    return str(kind)


def within_limits(value: Any, schema: dict[str, Any]) -> Any:
    """A number clamped to its bounds, a string cut to its maxLength; None for a
    string too short or off its pattern, or a list too short."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = value if low is None else max(value, low)
        return value if high is None else min(value, high)
    if isinstance(value, str):
        value = value[: schema.get("maxLength")]
        pattern = schema.get("pattern")
        too_short = len(value) < schema.get("minLength", 0)
        return None if too_short or (pattern and not re.search(pattern, value)) else value
    if isinstance(value, list):
        return value if len(value) >= schema.get("minItems", 0) else None
    return value


def split_name(name: str) -> list[str]:
    """``team_size`` and ``teamSize`` -> ["team", "size"]."""
    return re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").split()


def name_stems(name: str) -> set[str]:
    stems = {stem(word) for word in split_name(name)}
    return stems | {synonym for s in list(stems) for synonym in SYNONYMS.get(s, ())}


def without_article(text: str) -> str:
    return re.sub(r"^(?:the|a|an)\s+", "", text.strip(), flags=re.IGNORECASE).strip()


def same_name(label: str, name: str) -> bool:
    """The field "Company" is ``company``, "Team size" is ``team_size``."""
    return [stem(w) for w in split_name(label)] == [stem(w) for w in split_name(name)]


def pick_enum(values: list[Any], record: Record) -> Any:
    texts = [str(value) for value in values]
    return values[texts.index(pick_choice(texts, record))]


def example_for_schema(
    schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0
) -> Any:
    """The smallest instance that satisfies a simple JSON Schema."""
    root = schema if root is None else root
    schema = resolved(schema, root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = kind_of(schema)
    if depth > MAX_DEPTH:
        return None
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {name: example_for_schema(props.get(name, {}), root, depth + 1) for name in required}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [example_for_schema(items_of(schema), root, depth + 1) for _ in range(count)]
    minimum = schema.get("minimum", 0)
    return {
        "string": UNKNOWN[: schema.get("maxLength")].ljust(schema.get("minLength", 0), "?"),
        "integer": int(minimum),
        "number": minimum,
        "boolean": False,
        "null": None,
    }.get(kind)
