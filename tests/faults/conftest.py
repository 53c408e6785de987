"""Fixtures of the fault suite: one private PostgreSQL cluster for the session, and
the figures of every scenario, printed as a table at the end of the run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.harness import PostgresCluster, RedisServer, postgres_cluster
from tests.faults.runner import prepare_template, table

RESULTS: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def cluster() -> Iterator[PostgresCluster | None]:
    reason = RedisServer.unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_cluster() as pg:
        if pg is not None:
            prepare_template(pg)
        yield pg


@pytest.fixture(scope="session")
def fault_results() -> list[dict[str, Any]]:
    return RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault suite figures")
    terminalreporter.write_line(table(RESULTS))
    path = os.environ.get("FAULTS_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(RESULTS, out, indent=1)
