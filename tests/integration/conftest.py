"""Fixtures shared by the integration tests (the broker and Redis are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.webhook import Webhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A local Slack webhook, stopped (connections refused) after the test."""
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.stop()
