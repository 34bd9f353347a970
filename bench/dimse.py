"""Benchmark C-STORE: throughput (instances/s, MB/s), server CPU and peak memory of the DICOM
server, compared with `POST /instances` on the same data.

Generates 512x512 16-bit CT instances (`bench/ingest.py`), writes them to a folder in 4 parts,
and sends them all to a fresh `pharos serve` per run (SQLite, or a new PostgreSQL database):
- pynetdicom, one association, then 4 parallel associations (a part each, from 4 processes);
- dcmtk's `storescu`, one process (one association), then 4 parallel processes;
- `POST /instances` with 1 and 4 keep-alive clients.
The server's CPU time per instance is the measure to compare on a shared machine, where
wall-clock rates vary with the load. Every C-STORE must answer Success and the server must
count every instance afterwards, else the run stops with an error. Each setting runs
`--repeat` times; the table shows the medians.

Runs keep their files until the benchmark ends. Do not start it just after deleting many files
(a previous benchmark's clean-up) on ext4 without a journal, as this machine's disk is: there,
each new file or folder skips, one lookup at a time, the inodes freed in the last minutes (up to
six), and the server's file writes took twice their kernel time (four pynetdicom associations:
156-198 instances/s instead of 227-248).
Run from the repository root:

    .venv/bin/python bench/dimse.py --count 1000 --backend both --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, _config, evt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import ServerUsage, fresh_server, generate, upload_all  # noqa: E402
from pharos.dimse.handlers import set_no_delay  # noqa: E402
from tests.conftest import ServerProcess  # noqa: E402

PHAROS_AET = "ORTHANC"  # DicomAet's default
PARTS = 4  # the parallel associations, clients and processes
# Instances/s wanted (issue 4) by the number of associations.
TARGETS = {1: 100.0, 4: 200.0}
TIMEOUT = 120.0

# Send each file as it is on disk, without decoding it: the client must cost the server (on
# the same machine) as little CPU as possible.
_config.STORE_SEND_CHUNKED_DATASET = True


@dataclass(frozen=True, slots=True)
class Timed:
    """What a sender measured itself, its start-up left out."""

    seconds: float
    client_cpu_seconds: float


class BenchError(Exception):
    """A failure that ends the run: a C-STORE not answered Success, an instance missing."""


@dataclass(frozen=True, slots=True)
class Corpus:
    files: list[bytes]  # in memory, for POST /instances
    parts: list[list[Path]]  # the same, written to disk in PARTS folders
    folders: list[Path]

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def megabytes(self) -> float:
        return sum(map(len, self.files)) / 1e6

    @classmethod
    def write(cls, files: list[bytes], folder: Path) -> Corpus:
        size = -(-len(files) // PARTS)
        parts: list[list[Path]] = []
        folders = []
        for k in range(PARTS):
            part = folder / f"part{k}"
            part.mkdir(parents=True)
            folders.append(part)
            parts.append([])
            for i in range(k * size, min((k + 1) * size, len(files))):
                path = part / f"{i:06d}.dcm"
                path.write_bytes(files[i])
                parts[k].append(path)
        return cls(files, parts, folders)


# --- the senders: each sends the whole corpus to a server, raises BenchError on any failure ---


def pynetdicom_association(
    port: int, paths: list[Path], established: Callable[[], None] | None = None
) -> None:
    """Send `paths` over one association, with TCP_NODELAY on this side too; `established`
    is called once it is."""
    ae = AE(ae_title="BENCHSCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    assoc = ae.associate(
        "127.0.0.1", port, ae_title=PHAROS_AET, evt_handlers=[(evt.EVT_CONN_OPEN, set_no_delay)]
    )
    if not assoc.is_established:
        raise BenchError(f"pynetdicom: no association with port {port}")
    try:
        if established is not None:
            established()
        for path in paths:
            answer = assoc.send_c_store(path)
            code = answer.get("Status") if answer else None
            if code != 0x0000:
                comment = answer.get("ErrorComment", "") if answer else "no answer"
                raise BenchError(f"pynetdicom: C-STORE of {path.name} answered {code}: {comment}")
    finally:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()


def _pynetdicom_process(
    port: int, paths: list[Path], ready: Any, errors: Any, cpu_seconds: Any
) -> None:
    """One sending process: its association, then its part; puts the CPU time it spent
    after the barrier (its start-up left out) on `cpu_seconds`."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # a new interpreter: set again
    start = 0.0

    def established() -> None:  # wait for the others, then count
        nonlocal start
        ready.wait(TIMEOUT)
        start = time.process_time()

    try:
        pynetdicom_association(port, paths, established)
    except BaseException as exc:
        ready.abort()  # do not keep the others waiting
        errors.put(f"{type(exc).__name__}: {exc}")
    else:
        cpu_seconds.put(time.process_time() - start)


def send_pynetdicom(server: ServerProcess, corpus: Corpus, parallel: int) -> Timed | None:
    """One association from this process; or one per part, each from a process of its own
    (as from four modalities: four threads of one Python process would share its GIL, and
    measure the client more than the server). The time counts from when all four
    associations are established (the processes' start-up is left out)."""
    port = dicom_port(server)
    if parallel == 1:
        pynetdicom_association(port, [path for part in corpus.parts for path in part])
        return None
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Barrier(len(corpus.parts) + 1)
    errors = spawn.Queue()
    cpu_seconds = spawn.Queue()
    processes = [
        spawn.Process(target=_pynetdicom_process, args=(port, paths, ready, errors, cpu_seconds))
        for paths in corpus.parts
    ]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # one failed: its error is below
        ready.wait(TIMEOUT)
    start = time.perf_counter()
    for process in processes:
        process.join(TIMEOUT * 10)
    elapsed = time.perf_counter() - start
    for process in processes:
        if process.is_alive():
            process.kill()
            raise BenchError("pynetdicom: a sending process did not finish")
    if not errors.empty():
        raise BenchError(f"pynetdicom: {errors.get()}")
    if any(process.exitcode != 0 for process in processes):
        raise BenchError("pynetdicom: a sending process failed")
    return Timed(elapsed, sum(cpu_seconds.get(timeout=TIMEOUT) for _ in processes))


def send_storescu(server: ServerProcess, corpus: Corpus, parallel: int) -> None:
    """`storescu` on the part folders (`+sd`): one process for all, or one per part. Without
    `--repeat` or `+ma` it sends everything over a single association. It runs quiet: with
    `-v` it logs four lines per instance, which here costs it a fifth of its rate (75-83
    instead of 97-104 instances/s over one association, measured). `run` checks that every
    instance was stored."""
    groups = [corpus.folders] if parallel == 1 else [[folder] for folder in corpus.folders]
    command = ["storescu", "-aet", "STORESCU", "-aec", PHAROS_AET, "+sd"]
    processes = [
        subprocess.Popen(
            [*command, "127.0.0.1", str(dicom_port(server)), *map(str, folders)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for folders in groups
    ]
    try:
        outputs = [process.communicate(timeout=TIMEOUT * 10)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:  # timed out, or another failed first
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs, strict=True):
        # Quiet, it prints only its errors (a refused association, a failed store).
        if process.returncode != 0 or "E: " in output or "F: " in output:
            tail = "\n".join(output.splitlines()[-15:])
            raise BenchError(f"storescu exited with {process.returncode}:\n{tail}")


def send_rest(server: ServerProcess, corpus: Corpus, parallel: int) -> None:
    upload_all(server.url, corpus.files, parallel)  # raises for any answer but Success


# A sender returns None (`run` times it), or what it measured itself.
METHODS: dict[str, Callable[[ServerProcess, Corpus, int], Timed | None]] = {
    "pynetdicom": send_pynetdicom,
    "storescu": send_storescu,
    "POST /instances": send_rest,
}


def dicom_port(server: ServerProcess) -> int:
    return int(server.config["DicomPort"])  # type: ignore[call-overload]


def client_cpu_seconds() -> float:
    """This process's CPU time, with its waited-for children's (storescu)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


# --- one run --------------------------------------------------------------------------------


def run(
    backend: str,
    method: str,
    parallel: int,
    corpus: Corpus,
    run_dir: Path,
    options: dict[str, Any],
    env: dict[str, str],
) -> dict[str, Any]:
    run_dir.mkdir(parents=True)
    with fresh_server(backend, run_dir, options, env) as server:
        # The previous run's files are still being written back to disk: let that finish
        # first, or it slows the fsyncs of this one (by a third here).
        os.sync()
        with ServerUsage(server) as usage:
            client_cpu = -client_cpu_seconds()
            start = time.perf_counter()
            measured = METHODS[method](server, corpus, parallel)
            elapsed = time.perf_counter() - start
            client_cpu += client_cpu_seconds()
            if measured is not None:
                elapsed, client_cpu = measured.seconds, measured.client_cpu_seconds
        stored = httpx.get(server.url + "/statistics", timeout=60).json()["CountInstances"]
    if stored != corpus.count:
        raise BenchError(f"{method} x{parallel}: {stored} instances stored, not {corpus.count}")
    return {
        "backend": backend,
        "method": method,
        "parallel": parallel,
        "instances": corpus.count,
        "seconds": elapsed,
        "instances_per_s": corpus.count / elapsed,
        "mb_per_s": corpus.megabytes / elapsed,
        "server_cpu_pct": usage.cpu_seconds * 100 / elapsed,
        # The primary measure on a shared machine: wall-clock rates vary with the load.
        "server_cpu_ms_per_instance": usage.cpu_seconds * 1000 / corpus.count,
        "client_cpu_pct": client_cpu * 100 / elapsed,
        "peak_rss_mb": usage.peak_rss / 1e6,
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = dict(runs[0])
    for key in (
        "seconds",
        "instances_per_s",
        "mb_per_s",
        "server_cpu_pct",
        "server_cpu_ms_per_instance",
        "client_cpu_pct",
        "peak_rss_mb",
    ):
        summary[key] = statistics.median(run[key] for run in runs)
    summary["runs"] = runs
    return summary


def target_note(method: str, parallel: int, rate: float) -> str:
    if method == "POST /instances":
        return ""
    target = TARGETS[parallel]
    return f"≥{target:.0f}: {'met' if rate >= target else 'MISSED'}"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | method | associations / clients | instances/s | MB/s | server CPU % "
        "| server CPU ms/instance | client CPU % | server peak RSS MB | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['method']} | {r['parallel']} | {r['instances_per_s']:.1f} "
            f"| {r['mb_per_s']:.1f} | {r['server_cpu_pct']:.0f} "
            f"| {r['server_cpu_ms_per_instance']:.2f} | {r['client_cpu_pct']:.0f} "
            f"| {r['peak_rss_mb']:.0f} "
            f"| {target_note(r['method'], r['parallel'], r['instances_per_s'])} |"
        )
    return "\n".join(lines)


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--count", type=int, default=1000, help="instances sent per run")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql", "postgres", "both"], default="both"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median kept)")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated, of: " + ", ".join(METHODS)
    )
    parser.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="extra server configuration, as JSON: '{\"MaximumPduLength\": 131072}'",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="serve the pharos package of this folder (holding pharos/) instead of the one "
        "installed, e.g. a snapshot: git archive HEAD src | tar -x -C /tmp/snap (then "
        "--source /tmp/snap/src)",
    )
    parser.add_argument("--json", type=Path, help="also write the results (every run) here")
    args = parser.parse_args()
    methods = [name.strip() for name in args.methods.split(",")]
    if unknown := [name for name in methods if name not in METHODS]:
        parser.error(f"unknown methods: {', '.join(unknown)}")
    if "storescu" in methods and shutil.which("storescu") is None:
        parser.error("storescu (dcmtk) is not installed: leave it out of --methods")
    if args.count < PARTS:
        parser.error(f"--count must be at least {PARTS}")
    env: dict[str, str] = {}
    if args.source is not None:
        if not (args.source / "pharos" / "__init__.py").is_file():
            parser.error(f"--source: no pharos package in {args.source}")
        env["PYTHONPATH"] = str(args.source.resolve())
    backends = {
        "both": ["sqlite", "postgres"],
        "postgresql": ["postgres"],
    }.get(args.backend, [args.backend])

    print(f"generating {args.count} CT instances (512x512, 16-bit)...", file=sys.stderr)
    load_before = load()
    results = []
    with tempfile.TemporaryDirectory(prefix="pharos-bench-dimse-") as tmp:
        corpus = Corpus.write(generate(args.count), Path(tmp) / "files")
        print(f"{corpus.megabytes:.0f} MB; {load_before}", file=sys.stderr)
        for backend in backends:
            for method in methods:
                for parallel in (1, PARTS):
                    runs = [
                        run(
                            backend,
                            method,
                            parallel,
                            corpus,
                            Path(tmp) / f"{backend}-{method.replace(' ', '').replace('/', '')}"
                            f"-{parallel}-{attempt}",
                            args.config,
                            env,
                        )
                        for attempt in range(args.repeat)
                    ]
                    summary = median_of(runs)
                    results.append(summary)
                    print(
                        f"{backend:8} {method:15} x{parallel}  "
                        f"{summary['instances_per_s']:7.1f} inst/s  "
                        f"{summary['mb_per_s']:6.1f} MB/s  server CPU "
                        f"{summary['server_cpu_pct']:.0f}% "
                        f"({summary['server_cpu_ms_per_instance']:.2f} ms/instance)  peak RSS "
                        f"{summary['peak_rss_mb']:.0f} MB  ({load()})",
                        file=sys.stderr,
                        flush=True,
                    )
    load_after = load()
    print(
        f"{args.count} instances of {corpus.megabytes / args.count:.2f} MB, median of "
        f"{args.repeat} runs; {os.cpu_count()} CPUs; {load_before} before, {load_after} after"
    )
    print(f"server configuration: {json.dumps(args.config) if args.config else 'defaults'}")
    print(f"server code: {args.source or 'the installed pharos'}\n")
    print(table(results))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "count": args.count,
                    "repeat": args.repeat,
                    "machine": platform.platform(),
                    "cpus": os.cpu_count(),
                    "load_before": load_before,
                    "load_after": load_after,
                    "config": args.config,
                    "source": str(args.source or ""),
                    "results": results,
                },
                indent=2,
            )
        )
        print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"FAILED: {exc}")
