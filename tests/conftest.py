"""Shared fixtures: generated DICOM, SQLite and PostgreSQL indexes, real server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

REPO = Path(__file__).resolve().parent.parent

CORPUS = REPO.parent / "shared" / "dicom-corpus"
PG_ADMIN = os.environ.get("PHAROS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")


class PostgresDatabases:
    """Creates throw-away databases on the local server and drops them at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> dict[str, object]:
        name = f"pharos_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return {
            "EnableIndex": True,
            "Host": "127.0.0.1",
            "Port": 5432,
            "Database": name,
            "Username": "postgres",
            "Password": "",
        }

    def drop_all(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test on both index backends."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_databases")
    return str(request.param)


@pytest.fixture
def backend_config(backend: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Configuration options selecting the index backend of the test."""
    if backend == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        return {"PostgreSQL": databases.create()}
    return {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortTaken(RuntimeError):
    """The server could not bind a port: another process took it meanwhile."""


class ServerProcess:
    """`pharos serve` in a subprocess, polled until it answers (never a fixed sleep)."""

    def __init__(self, workdir: Path, config: dict[str, object], env: dict[str, str] | None = None):
        self.env = env or {}
        self.workdir = workdir
        self.given = config
        self.process: subprocess.Popen[bytes] | None = None
        self._choose_ports()

    def _choose_ports(self) -> None:
        """Free ports for what the test did not fix. Another process may take one between
        this choice and the server's bind: `start` then chooses again."""
        import json

        self.config = {"HttpPort": free_port(), "DicomPort": free_port(), **self.given}
        self.port = int(self.config["HttpPort"])  # type: ignore[call-overload]
        self.config_path = self.workdir / f"config-{self.port}.json"
        self.config_path.write_text(json.dumps(self.config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        # Only a first start may move: a restarted server keeps the address clients know.
        first = self.process is None
        chosen = first and ("HttpPort" not in self.given or "DicomPort" not in self.given)
        for _ in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                if not chosen:
                    raise
                self._choose_ports()
        return self._start(timeout)

    def _start(self, timeout: float) -> ServerProcess:
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pharos.cli", "serve", "--config", str(self.config_path)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log().lower():
                    raise PortTaken(self.log())
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                # Any answer will do (a server requiring credentials answers 401).
                if httpx.get(self.url + "/system", timeout=1).status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[object]:
    """Start `pharos serve` processes, each in a folder of its own; stopped after the test."""
    started: list[ServerProcess] = []

    def start(
        config: dict[str, object] | None = None, workdir: Path | None = None
    ) -> ServerProcess:
        if workdir is None:
            workdir = tmp_path / f"server{len(started)}"
            workdir.mkdir()
        server = ServerProcess(workdir, config or {}).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: object, backend_config: dict[str, object]) -> ServerProcess:
    """A real server process on a free port, on the backend of the test."""
    return server_factory(backend_config)  # type: ignore[operator]


class Api(httpx.Client):
    """An HTTP client on a real server process, knowing where that server keeps its files."""

    server: ServerProcess

    @property
    def storage_dir(self) -> Path:
        return self.server.workdir / str(
            self.server.config.get("StorageDirectory", "PharosStorage")
        )

    def stored_files(self) -> list[Path]:
        """The attachment files of the storage area (not the SQLite index kept beside them)."""
        return sorted(
            path
            for path in self.storage_dir.glob("??/??/*")
            if path.is_file() and len(path.name) == 36
        )


@pytest.fixture
def api_factory(server_factory: object, backend_config: dict[str, object]) -> Iterator[object]:
    """Start a server (on the test's backend) with extra options; an `Api` client on it."""
    clients: list[Api] = []

    def make(**config: object) -> Api:
        server = server_factory({**backend_config, **config})  # type: ignore[operator]
        client = Api(base_url=server.url, timeout=60)
        client.server = server
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def api(api_factory: object) -> Api:
    """A real `pharos serve` process on the backend of the test, and a client on it."""
    return api_factory()  # type: ignore[operator, no-any-return]
