"""Fixtures for the live tests: the broker + agent of the test contract, found through
KUBELINE_TEST_* variables only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import pytest

import kubeline

LIVE_VARS = (
    "KUBELINE_TEST_ENDPOINT",
    "KUBELINE_TEST_API_KEY",
    "KUBELINE_TEST_CLUSTER",
    "KUBELINE_TEST_OTHER_KEY",
    "KUBELINE_TEST_DEAD_ENDPOINT",
)


@dataclass(frozen=True)
class Live:
    endpoint: str
    api_key: str
    cluster: str
    other_key: str
    dead_endpoint: str


@pytest.fixture(scope="session")
def live() -> Live:
    missing = [v for v in LIVE_VARS if not os.environ.get(v)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: the live tests need a running broker with an agent for "
            "a cluster (see sdk/python/README.md, 'Tests'). Unit tests alone: test.sh -m 'not live'",
            pytrace=False,
        )
    return Live(*(os.environ[v] for v in LIVE_VARS))


@pytest.fixture
def client(live: Live) -> Iterator[kubeline.Client]:
    with kubeline.Client(endpoint=live.endpoint, api_key=live.api_key, timeout=30) as c:
        yield c


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
