"""Fixtures of the DICOM networking tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dimse.loopback import Scp, loopback_scp


@pytest.fixture
def scp() -> Iterator[Scp]:
    """A loopback server (`loopback.py`) answering Success to every C-STORE."""
    yield from loopback_scp()
