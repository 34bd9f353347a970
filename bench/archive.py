"""Benchmark archives: download a ~2 GB study as `/studies/{id}/archive` (and `/media`) from a
fresh `pharos serve`, and watch the server's memory while it streams.

Stores `--instances` instances (400 by default) of `--size-mb` MB each (5: 2 GB in all) in
one study of four series through `POST /instances`, then downloads the archive `--repeat`
times (3) with one client that counts the bytes and checks the ZIP's end records, and
reports the throughput (median MB/s) and the server's resident memory before the download
and at its peak during it (psutil, sampled every 50 ms). Targets: 100 MB/s, and a peak
within 100 MB of the memory before (flat: the ZIP is never held whole). Run from the
repository root:

    .venv/bin/python bench/archive.py [--backend sqlite|postgres] [--media]

The machine this runs on may be shared: MB/s vary with its load (the report prints it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from ingest import fresh_server  # noqa: E402
from tests.conftest import ServerProcess  # noqa: E402
from tests.dicomgen import make_dataset, to_bytes  # noqa: E402

TARGET_MB_PER_S = 100.0
FLAT_MEMORY_MB = 100.0
SERIES = 4


class Sampler(threading.Thread):
    """The peak resident memory of a process, sampled every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


def instances(count: int, size_mb: float) -> Any:
    """`count` CT instances of about `size_mb` MB (one square frame of 16-bit noise), in one
    study of four series; generated one at a time (never 2 GB in memory)."""
    side = int((size_mb * 1e6 / 2) ** 0.5)
    noise = np.random.default_rng(7).integers(0, 4000, side * side, dtype=np.int16).tobytes()
    study = generate_uid()
    series = [generate_uid() for _ in range(SERIES)]
    for number in range(count):
        dataset = make_dataset(
            patient_id="BENCH",
            patient_name="Archive^Bench",
            study_uid=study,
            series_uid=series[number % SERIES],
            instance_number=number + 1,
            rows=1,
            columns=1,
            SeriesNumber=number % SERIES + 1,
        )
        dataset.Rows = dataset.Columns = side
        dataset.PixelData = struct.pack("<I", number) + noise[4:]  # every file different
        yield to_bytes(dataset)


def store(url: str, count: int, size_mb: float) -> tuple[str, int, float]:
    """Stores the instances; their study's ID, their total size and the seconds it took."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    study, total, start = "", 0, time.perf_counter()
    for data in instances(count, size_mb):
        conn.request("POST", "/instances", body=data, headers={"Content-Type": "application/dicom"})
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"upload failed: {response.status} {answer[:200]!r}")
        study = json.loads(answer)["ParentStudy"]
        total += len(data)
    conn.close()
    return study, total, time.perf_counter() - start


def download(url: str, path: str, pid: int) -> dict[str, Any]:
    """One download: its size, MB/s, and the server's memory before and at its peak."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    before = psutil.Process(pid).memory_info().rss
    sampler = Sampler(pid)
    sampler.start()
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {response.read()[:200]!r}")
    size, tail, crc = 0, b"", 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
        tail = (tail + chunk)[-(1 << 16) :]
        crc = zlib.crc32(chunk[:64], crc)  # touch the data, as a client writing it would
    elapsed = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    conn.close()
    entries = check_end(tail)
    return {
        "bytes": size,
        "entries": entries,
        "seconds": elapsed,
        "mb_per_s": size / 1e6 / elapsed,
        "rss_before_mb": before / 1e6,
        "rss_peak_mb": max(sampler.peak, before) / 1e6,
    }


def check_end(tail: bytes) -> int:
    """The number of entries the ZIP's end of central directory (or ZIP64 one) declares."""
    end = tail.rfind(b"PK\x05\x06")
    if end < 0:
        raise RuntimeError("the download does not end with a ZIP end of central directory")
    (entries,) = struct.unpack_from("<H", tail, end + 10)
    zip64 = tail.rfind(b"PK\x06\x06")
    if entries == 0xFFFF and zip64 >= 0:
        (entries,) = struct.unpack_from("<Q", tail, zip64 + 32)
    return int(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--size-mb", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--media", action="store_true", help="also time /media (DICOMDIR)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pharos-bench-archive-") as workdir:
        # No gzip middleware in the way, and the server's own timeout generous on a busy box.
        options = {"HttpCompressionEnabled": False}
        with started(args.backend, Path(workdir), options) as server:
            assert server.process is not None
            pid = server.process.pid
            study, total, seconds = store(server.url, args.instances, args.size_mb)
            print(
                f"stored {args.instances} instances, {total / 1e6:.0f} MB, "
                f"in {seconds:.1f} s ({total / 1e6 / seconds:.0f} MB/s)"
            )
            routes = [f"/studies/{study}/archive"]
            if args.media:
                routes.append(f"/studies/{study}/media")
            results = []
            for route in routes:
                runs = [download(server.url, route, pid) for _ in range(args.repeat)]
                for run in runs:
                    if run["entries"] != args.instances + (1 if "media" in route else 0):
                        raise RuntimeError(f"{route}: {run['entries']} entries in the ZIP")
                results.append(summary(route.rsplit("/", 1)[1], runs))
    print(
        f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"on {os.cpu_count()} CPUs (a shared machine: MB/s vary with its load)"
    )
    for result in results:
        print(json.dumps(result))


@contextlib.contextmanager
def started(backend: str, workdir: Path, options: dict[str, Any]) -> Iterator[ServerProcess]:
    """A fresh server; on SQLite given minutes to start (a loaded machine is slow to)."""
    if backend == "postgres":
        with fresh_server(backend, workdir, options) as server:
            yield server
        return
    server = ServerProcess(workdir, options).start(timeout=300)
    try:
        yield server
    finally:
        server.stop()


def summary(kind: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    rate = statistics.median(run["mb_per_s"] for run in runs)
    growth = max(run["rss_peak_mb"] - run["rss_before_mb"] for run in runs)
    return {
        "route": kind,
        "zip_mb": runs[0]["bytes"] / 1e6,
        "mb_per_s_median": round(rate, 1),
        "mb_per_s_runs": [round(run["mb_per_s"], 1) for run in runs],
        "rss_before_mb": round(runs[0]["rss_before_mb"], 1),
        "rss_peak_mb": round(max(run["rss_peak_mb"] for run in runs), 1),
        "rss_growth_mb": round(growth, 1),
        "throughput_target_met": rate >= TARGET_MB_PER_S,
        "memory_flat": growth <= FLAT_MEMORY_MB,
    }


if __name__ == "__main__":
    main()
