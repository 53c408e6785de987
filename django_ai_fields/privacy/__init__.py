"""Privacy: personal data kept out of prompts.

``redaction`` (masking PII in the rendered prompt in PREP and restoring it in the
answer), ``pii`` (the built-in detector: e-mails, phones, cards, IBANs, SSNs, IP
addresses) and ``presidio`` (the optional Presidio backend for names and places).
Just above the shared vocabulary's ``conf``: ``models.py`` imports ``redaction``
for the entity types, so nothing here imports models or any layer that does.
"""
