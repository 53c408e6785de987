"""The fault suite: real Redis, real PostgreSQL, real worker processes, injected faults.

Run with ``pytest -m faults tests/faults`` (excluded from the default run), or
``python -m tests.faults.report`` for the table in docs/reliability.md.
"""
