"""How the offline provider reads a prompt and answers in text.

A rendered prompt is an instruction with the record's values fenced in ``<data>``
tags (declare/prompts.py): ``<data field="notes">…</data>`` for one field, and
``Label: value`` lines inside one ``<data>`` for ``{*}``. ``read_record`` takes the
values apart from the instruction; the answers below use the values only: an
extractive summary, a short headline, a choice picked by cues in the text.
Everything is a pure function of the text: the same prompt, the same answer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..codes import TRUNCATION_MARKER

_DATA = re.compile(r'<data(?:\s+field="([^"]*)")?[^>]*>(.*?)</data>', re.DOTALL)
_LABELLED = re.compile(r"^([A-Z][\w ]{0,40}?):\s*(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
_CLAUSE_END = re.compile(r"\s*[;:]\s+|\s+[-\u2013\u2014]\s+")  # ; : and dashes
WORD = re.compile(r"\d[\d,.]*\d|\d|[^\W\d_][\w'-]*")
# Leading sentences of an unfenced prompt that ask rather than tell.
_INSTRUCTION = re.compile(
    r"^\s*(?:(?:summari[sz]e|write|extract|classify|describe|list|give|answer|return|"
    r"translate|generate|create|find|tell|rate|choose|pick|read)\b[^.:?!\n]*[.:?!]\s*)+",
    re.IGNORECASE,
)
_HEADLINE = re.compile(r"\b(?:headline|title|tagline|subject line)s?\b", re.IGNORECASE)
_COUNT = re.compile(r"\b(one|two|three|four|five|single|a|\d+)[ -](?:sentence|line)s?\b", re.I)
_COUNTS = {"one": 1, "single": 1, "a": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_MAX_CHARS = re.compile(r"\bat most (\d+) characters\b", re.IGNORECASE)


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = word_set(
    "a an the and or but nor so of to in on at for with from by as into onto over under "
    "after before about against between during up down out off is are was were be been "
    "being am it its this that these those there here their our your his her they we you "
    "he she i me my us them then than also just very has have had do does did will would "
    "can could should may might must shall not no"
)
SUMMARY_SENTENCES = 2
HEADLINE_WORDS = 10
NO_DATA = "No details given."

# Words in a text that point to a choice, comma-separated (matched as word prefixes:
# "evaluat" matches "evaluating"). A choice's own value always counts as a cue too.
CUES = {
    "hot": "budget approved, contract, signed, purchase order, ready to buy, asap, this week",
    "warm": "evaluat, interest, consider, follow up, demo, trial, compar, next month, planning",
    "cold": "no reply, no response, not interested, unsubscrib, once, ghost, no budget, next year",
    "positive": "great, love, excellent, happy, thank, recommend, pleased, good",
    "negative": "bad, terrible, broken, angry, refund, disappoint, poor, worst, complain, not work",
    "neutral": "okay, fine, average, question, wonder",
    "high": "urgent, asap, critical, immediately, blocker, outage",
    "medium": "soon, important, this month",
    "low": "whenever, minor, someday, no rush, cosmetic",
}


@dataclass
class Record:
    """The data of a prompt: (label, value) pairs (label "" when it has none)."""

    fields: list[tuple[str, str]]
    instruction: str

    @property
    def text(self) -> str:
        return "\n".join(value for _label, value in self.fields)

    def prose(self) -> list[str]:
        """The sentences of the values that are prose (notes, descriptions)."""
        return [s for _label, value in self.fields if is_prose(value) for s in sentences(value)]

    def facts(self) -> list[str]:
        """The short values that are not numbers (a name, a company)."""
        facts = [
            value
            for _label, value in self.fields
            if not is_prose(value) and not re.fullmatch(r"[\d\s,.:-]*", value)
        ]
        return list(dict.fromkeys(facts))


def read_record(prompt: str) -> Record:
    """The record's values in ``prompt``, apart from the instruction around them."""
    fenced = list(_DATA.finditer(prompt))
    if not fenced:  # a callable prompt, an AI function's: skip a leading instruction
        asked = _INSTRUCTION.match(prompt)
        data = prompt[asked.end() :] if asked else prompt
        return Record(labelled_lines(data or prompt), asked.group(0) if asked else "")
    fields: list[tuple[str, str]] = []
    for match in fenced:
        name, body = match.group(1) or "", clean(match.group(2))
        fields.extend([(name, body)] if name else labelled_lines(body))
    instruction = " ".join(_DATA.sub(" ", prompt).split())
    return Record([(label, value) for label, value in fields if value], instruction)


def clean(value: str) -> str:
    return value.replace(TRUNCATION_MARKER, " …").strip()


def labelled_lines(body: str) -> list[tuple[str, str]]:
    """``Label: value`` lines as pairs; a line without a label continues the value above."""
    pairs: list[tuple[str, str]] = []
    for line in body.strip().splitlines():
        labelled = _LABELLED.match(line.strip())
        if labelled:
            pairs.append((labelled.group(1), labelled.group(2).strip()))
        elif pairs:
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]}\n{line.strip()}".strip())
        else:
            pairs.append(("", line.strip()))
    return pairs


def words(text: str) -> list[str]:
    return WORD.findall(text)


def stem(word: str) -> str:
    """A crude stem, enough to match "interests" with "interested"."""
    word = word.lower()
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def is_prose(value: str) -> bool:
    """Notes rather than a name: sentences, or three words or more, not all capitalised."""
    found = words(value)
    if re.search(r"[.!?]\s+\S", value):
        return True
    return len(found) >= 3 and any(word[0].islower() for word in found)


def informativeness(sentence: str) -> int:
    """Distinct content words, numbers counting double."""
    found = words(sentence)
    content = {stem(w) for w in found if w.lower() not in STOPWORDS and len(w) > 2}
    return len(content) + 2 * sum(w[0].isdigit() for w in found)


def digest(text: str) -> int:
    """A stable number for a text (the built-in hash() changes between processes)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


# --------------------------------------------------------------------------- answers


def summary(record: Record, *, wanted: int, max_chars: int) -> str:
    """The ``wanted`` most informative sentences of the record, in their order."""
    prose = record.prose()
    if not prose:
        return fit(facts_line(record) or NO_DATA, max_chars)
    ranked = sorted(range(len(prose)), key=lambda i: (-informativeness(prose[i]), i))
    return fit(" ".join(prose[i] for i in sorted(ranked[:wanted])), max_chars)


def headline(record: Record, *, max_chars: int) -> str:
    """The first clause of the most informative sentence, in a few words."""
    prose = record.prose()
    if not prose:
        return fit(facts_line(record) or NO_DATA, max_chars)
    best = min(range(len(prose)), key=lambda i: (-informativeness(prose[i]), i))
    clause = _CLAUSE_END.split(prose[best])[0].split()
    if len(clause) > HEADLINE_WORDS:
        clause = clause[:HEADLINE_WORDS]
        while len(clause) > 1 and clause[-1].lower() in STOPWORDS:
            clause.pop()
    text = " ".join(clause).rstrip(".,;:!?")
    return fit(text[:1].upper() + text[1:], max_chars)


def facts_line(record: Record) -> str:
    """The first short value, then the others: "Ada Lovelace (Analytical Engines Ltd)"."""
    facts = record.facts()[:3]
    if len(facts) > 1:
        return f"{facts[0]} ({', '.join(facts[1:])})"
    return facts[0] if facts else ""


def fit(text: str, max_chars: int) -> str:
    """``text`` cut at a word boundary to at most ``max_chars`` characters."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def pick_choice(choices: list[str], record: Record) -> str:
    """The choice with the most cues in the record; among equals, a stable pick."""
    text = " ".join(words(record.text)).lower().replace("-", " ")
    scores = [cue_count(choice, text) for choice in choices]
    tied = [choice for choice, score in zip(choices, scores, strict=True) if score == max(scores)]
    return tied[digest(record.text) % len(tied)]


def cue_count(choice: str, text: str) -> int:
    """How often the choice or its cues occur in ``text``, not after "no" or "not"."""
    key = choice.lower().replace("_", " ").replace("-", " ").strip()
    cues = [key, *(CUES[key].split(", ") if key in CUES else ())]
    either = "|".join(re.escape(cue) for cue in cues if cue)
    return len(re.findall(rf"(?<!\bno )(?<!\bnot )\b(?:{either})", text)) if either else 0


# --------------------------------------------------------------------------- the request


def wants_headline(record: Record, system: str) -> bool:
    return bool(_HEADLINE.search(record.instruction) or _HEADLINE.search(system))


def sentences_wanted(record: Record, system: str) -> int:
    asked = _COUNT.search(record.instruction) or _COUNT.search(system)
    if not asked:
        return SUMMARY_SENTENCES
    count = asked.group(1).lower()
    return _COUNTS.get(count) or max(1, int(count))


def char_limit(system: str, max_tokens: int) -> int:
    """What the answer may hold: about 4 characters a token, or the field's max_length."""
    limit = max(16, max_tokens * 4)
    asked = _MAX_CHARS.search(system)
    return min(limit, int(asked.group(1))) if asked else limit
