"""What sending one file can end in, and the errors that stop an import."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    STORED = "stored"
    ALREADY_STORED = "already stored"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: str | None = None  # why it failed

    @staticmethod
    def failed(reason: str) -> Outcome:
        return Outcome(Status.FAILED, reason)


STORED = Outcome(Status.STORED)
ALREADY_STORED = Outcome(Status.ALREADY_STORED)


class UsageError(Exception):
    """A mistake in the command line or its surroundings (no such path, bad URL, server not
    reachable): one line for the user, exit status 2, nothing imported."""


class ServerGone(Exception):
    """The server stopped answering during the import: no point in sending the rest."""
