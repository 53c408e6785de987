"""The built-in PII detector: where e-mail addresses, phone numbers, card numbers,
IBANs, US social security numbers and IP addresses occur in a text.

Pure Python with one small dependency, ``phonenumbers`` (Google's libphonenumber
metadata, the maintained way to find phone numbers in text). Candidates are
checked, not just pattern-matched: card numbers by the Luhn checksum, IBANs by
their country's length and the ISO 7064 mod-97 check, IP addresses by
``ipaddress``, phone numbers by libphonenumber's validity rules. What it catches
and misses: docs/tenants.md#privacy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import phonenumbers

EMAIL, PHONE, CARD, IBAN, SSN, IP = "email", "phone", "card", "iban", "ssn", "ip"
BUILTIN_TYPES = (EMAIL, PHONE, CARD, IBAN, SSN, IP)


@dataclass(frozen=True)
class Span:
    """One entity found in a text: ``text[start:end]`` is its value."""

    start: int
    end: int
    entity: str

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


# -- e-mail ---------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+'-])[\w.%+'-]+@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)


def find_emails(text: str) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        yield Span(match.start(), match.end(), EMAIL)


# -- card numbers (Luhn) --------------------------------------------------------------

# 13-19 digits, optionally in groups split by one space or dash; not a "+" phone number.
_CARD = re.compile(r"(?<![\d+])\d(?:[ -]?\d){12,18}(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_cards(text: str) -> Iterator[Span]:
    """Runs of 13-19 digits passing Luhn; a run with more digits behind the card
    ("4111 1111 1111 1111 12/27") is tried up to each group boundary, longest first."""
    for match in _CARD.finditer(text):
        run = match.group()
        ends = [m.start() for m in re.finditer(r"[ -]", run)] + [len(run)]
        for end in sorted(ends, reverse=True):
            digits = re.sub(r"\D", "", run[:end])
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                yield Span(match.start(), match.start() + end, CARD)
                break


# -- IBAN (length by country, mod-97) -------------------------------------------------

# Total IBAN length per country (SWIFT's IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}")


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length, then ISO 7064 mod 97-10 over the rearranged code."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def find_ibans(text: str) -> Iterator[Span]:
    """IBANs written as one word or in groups split by single spaces."""
    for match in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(match.group()[:2].upper())
        if length is None:
            continue
        end = _iban_end(text, match.start(), length)
        if end is not None and iban_valid(text[match.start() : end].replace(" ", "")):
            yield Span(match.start(), end, IBAN)


def _iban_end(text: str, start: int, length: int) -> int | None:
    """Where an IBAN of ``length`` characters starting at ``start`` ends, or None."""
    taken, position = 0, start
    while taken < length and position < len(text):
        char = text[position]
        if char.isascii() and char.isalnum():
            taken += 1
        elif not (char == " " and taken and text[position + 1 : position + 2].isalnum()):
            return None
        position += 1
    if taken < length or text[position : position + 1].isalnum():
        return None
    return position


# -- US social security numbers -------------------------------------------------------

# The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000; the two
# separators (dash or space) are the same.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
# Nine digits in a row count only right after a label ("SSN: 078051120").
_SSN_LABELLED = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:#|:|is|=)?\s*"
    r"((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})(?!\d)"
)


def find_ssns(text: str) -> Iterator[Span]:
    for match in _SSN.finditer(text):
        yield Span(match.start(), match.end(), SSN)
    for match in _SSN_LABELLED.finditer(text):
        yield Span(match.start(1), match.end(1), SSN)


# -- IP addresses ---------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?![\w:])")


def find_ips(text: str) -> Iterator[Span]:
    for match in _IPV4.finditer(text):
        if _is_ip(match.group()):
            yield Span(match.start(), match.end(), IP)
    for match in _IPV6.finditer(text):
        candidate = match.group().rstrip(".")
        hex_digit = re.search(r"[0-9A-Fa-f]", candidate)
        if candidate.count(":") >= 2 and hex_digit and _is_ip(candidate):
            yield Span(match.start(), match.start() + len(candidate), IP)


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


# -- phone numbers (libphonenumber) ---------------------------------------------------


def find_phones(text: str, regions: Iterable[str] = ("US",)) -> Iterator[Span]:
    """Valid numbers in international form (+...) anywhere, and national ones as
    written in each of ``regions`` (ISO 3166 codes, e.g. "US", "DE")."""
    for region in regions:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region.upper(), leniency=phonenumbers.Leniency.VALID
        )
        for match in matcher:
            yield Span(match.start, match.end, PHONE)


# -- all of them ----------------------------------------------------------------------

# On overlaps the earlier type wins (an IBAN's digits are no phone number).
PRIORITY = (EMAIL, IBAN, CARD, SSN, IP, PHONE)
_FINDERS: dict[str, Callable[[str], Iterator[Span]]] = {
    EMAIL: find_emails,
    IBAN: find_ibans,
    CARD: find_cards,
    SSN: find_ssns,
    IP: find_ips,
}


def find(text: str, types: Iterable[str], *, phone_regions: Iterable[str] = ("US",)) -> list[Span]:
    """The built-in types' entities in ``text``, without overlaps, in text order."""
    wanted = set(types)
    found: list[Span] = []
    for entity in PRIORITY:
        if entity not in wanted:
            continue
        spans = find_phones(text, phone_regions) if entity == PHONE else _FINDERS[entity](text)
        found.extend(spans)
    return without_overlaps(found)


def without_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep spans in the given order of preference, dropping any that overlap a kept one."""
    kept: list[Span] = []
    for span in spans:
        if not any(span.overlaps(other) for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda span: span.start)
