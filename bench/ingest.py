"""Benchmark `POST /instances`: throughput (instances/s, MB/s), server CPU and peak memory.

Generates 512x512 16-bit CT instances, starts a fresh `pharos serve` per run (SQLite, or a new
PostgreSQL database), and uploads everything with 1 and 4 concurrent clients over keep-alive
connections. Run from the repository root:

    .venv/bin/python bench/ingest.py --count 1000 --backend both
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pydicom.uid import generate_uid  # noqa: E402

from tests.conftest import ServerProcess  # noqa: E402
from tests.dicomgen import make_dataset, to_bytes  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def generate(count: int, per_series: int = 100) -> list[bytes]:
    files = []
    study_uid = series_uid = ""
    for i in range(count):
        if i % per_series == 0:
            series_uid = generate_uid()
            if i % (per_series * 4) == 0:
                study_uid = generate_uid()
        ds = make_dataset(
            patient_id=f"BENCH-{i // (per_series * 4)}",
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=i % per_series + 1,
            rows=512,
            columns=512,
            seed=i,
        )
        files.append(to_bytes(ds))
    return files


class Sampler(threading.Thread):
    """Samples the server's resident memory every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)


def upload_all(url: str, files: list[bytes], clients: int) -> tuple[float, list[float]]:
    host, port = url.removeprefix("http://").split(":")
    work: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    for data in files:
        work.put(data)
    for _ in range(clients):
        work.put(None)
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while (data := work.get()) is not None:
            start = time.perf_counter()
            conn.request(
                "POST", "/instances", body=data, headers={"Content-Type": "application/dicom"}
            )
            response = conn.getresponse()
            body = response.read()
            latencies.append(time.perf_counter() - start)
            if response.status != 200 or b'"Success"' not in body:
                errors.append(body[:200].decode(errors="replace"))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} uploads failed, e.g. {errors[0]}")
    return elapsed, latencies


@contextlib.contextmanager
def fresh_server(
    backend: str,
    run_dir: Path,
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """A new `pharos serve` in `run_dir` with the configuration `options` (and environment
    variables `env`): on SQLite, or on a new PostgreSQL database (`backend` "postgres")
    dropped when it stops."""
    config: dict[str, Any] = dict(options or {})
    database = None
    if backend == "postgres":
        database = f"pharos_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        config["PostgreSQL"] = {
            "EnableIndex": True,
            "Host": "127.0.0.1",
            "Port": 5432,
            "Database": database,
            "Username": "postgres",
            "Password": "",
        }
    try:
        server = ServerProcess(run_dir, config, env).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        if database is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class ServerUsage:
    """The server's CPU time (user + system, in seconds) and peak RSS (bytes) while the
    `with` block runs."""

    def __init__(self, server: ServerProcess):
        assert server.process is not None
        self.process = psutil.Process(server.process.pid)
        self.sampler = Sampler(server.process.pid)
        self.cpu_seconds = 0.0
        self.peak_rss = 0

    def __enter__(self) -> ServerUsage:
        self.sampler.start()
        self.cpu_seconds = -sum(self.process.cpu_times()[:2])
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cpu_seconds += sum(self.process.cpu_times()[:2])
        self.sampler.done.set()
        self.sampler.join()
        self.peak_rss = self.sampler.peak


def run(backend: str, files: list[bytes], clients: int, workdir: Path) -> dict[str, Any]:
    run_dir = workdir / f"{backend}-{clients}"
    run_dir.mkdir()
    with fresh_server(backend, run_dir) as server, ServerUsage(server) as usage:
        elapsed, latencies = upload_all(server.url, files, clients)
    megabytes = sum(len(f) for f in files) / 1e6
    ordered = sorted(latencies)
    return {
        "backend": backend,
        "clients": clients,
        "instances": len(files),
        "instances_per_s": len(files) / elapsed,
        "mb_per_s": megabytes / elapsed,
        "server_cpu_ms_per_instance": usage.cpu_seconds * 1000 / len(files),
        "latency_p50_ms": statistics.median(ordered) * 1000,
        "latency_p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "peak_rss_mb": usage.peak_rss / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (median kept)")
    args = parser.parse_args()

    print(f"generating {args.count} CT instances (512x512, 16-bit)...", file=sys.stderr)
    files = generate(args.count)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    with tempfile.TemporaryDirectory(prefix="pharos-bench-") as tmp:
        for backend in backends:
            for clients in (int(c) for c in args.clients.split(",")):
                runs = []
                for attempt in range(args.repeat):
                    workdir = Path(tmp) / f"r{attempt}"
                    workdir.mkdir(exist_ok=True)
                    runs.append(run(backend, files, clients, workdir))
                best = sorted(runs, key=lambda r: r["instances_per_s"])[len(runs) // 2]
                results.append(best)
                print(
                    f"{backend:8} clients={clients}  {best['instances_per_s']:7.1f} inst/s  "
                    f"{best['mb_per_s']:6.1f} MB/s  "
                    f"cpu {best['server_cpu_ms_per_instance']:.2f} ms/inst  "
                    f"p50 {best['latency_p50_ms']:.1f} ms  p95 {best['latency_p95_ms']:.1f} ms  "
                    f"peak RSS {best['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
