"""A job the tests control step by step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pharos.model.jobs import JobOutput, StepResult, StopReason


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until the condition holds (never a fixed sleep); fails after the timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true")
        time.sleep(0.01)


class Gate:
    """Lets a given number of steps through (shared by the jobs of a test)."""

    def __init__(self, open_: bool = False):
        self._semaphore = threading.Semaphore(0)
        self.open = open_

    def allow(self, steps: int = 1) -> None:
        for _ in range(steps):
            self._semaphore.release()

    def wait(self) -> None:
        if not self.open and not self._semaphore.acquire(timeout=30):
            raise RuntimeError("the test never let this step through")


class FakeJob:
    job_type = "Fake"

    def __init__(
        self,
        gate: Gate,
        steps: int = 3,
        position: int = 0,
        name: str = "",
        done: list[str] | None = None,
        fail_at: int | None = None,
        error: Exception | None = None,
        retry_once_at: int | None = None,
    ):
        self.gate = gate
        self.steps = steps
        self.position = position
        self.name = name
        self.done = done if done is not None else []
        self.fail_at = fail_at
        self.error = error
        self.retry_once_at = retry_once_at
        self.starts = 0
        self.stops: list[StopReason] = []
        self.resets = 0
        self.inside = False  # a step is running

    def start(self) -> None:
        self.starts += 1

    def step(self) -> StepResult:
        self.inside = True
        try:
            self.gate.wait()
        finally:
            self.inside = False
        if self.retry_once_at == self.position:
            self.retry_once_at = None
            return StepResult.retry(3600)
        if self.fail_at == self.position:
            assert self.error is not None
            raise self.error
        self.position += 1
        if self.position >= self.steps:
            self.done.append(self.name)
            return StepResult.done()
        return StepResult.proceed()

    def stop(self, reason: StopReason) -> None:
        self.stops.append(reason)

    def reset(self) -> None:
        self.resets += 1
        self.position = 0

    def progress(self) -> float:
        return self.position / self.steps

    def public_content(self) -> dict[str, Any]:
        return {"Name": self.name, "Position": self.position}

    def serialize(self) -> dict[str, Any]:
        return {"Name": self.name, "Steps": self.steps, "Position": self.position}

    def output(self, key: str) -> JobOutput | None:
        if key == "name":
            return JobOutput(self.name.encode(), "text/plain", "name.txt")
        return None


def factory(gate: Gate) -> Callable[[dict[str, Any]], FakeJob]:
    def build(value: dict[str, Any]) -> FakeJob:
        return FakeJob(gate, int(value["Steps"]), int(value["Position"]), str(value["Name"]))

    return build
