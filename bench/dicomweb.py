"""Benchmark DICOMweb: QIDO-RS study search by StudyDate range, WADO-RS series metadata (cold
and cached: 20-instance series, and one of 500), frame retrieval and STOW-RS throughput, on a
fresh `pharos serve`; then the same QIDO search on a second server holding `--large`
instances (100,000 by default, 20,000 studies).

Loads the generated corpus of bench/corpus.py (10,000 instances = 2,000 studies by default,
the size of the issue's Orthanc numbers) with bench/find.py's loader, adds series of 20
512x512 CT instances (bench/ingest.py's generator), then times the requests with one
keep-alive client and checks every answer. Run from the repository root:

    .venv/bin/python bench/dicomweb.py --backend sqlite
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import pydicom  # noqa: E402

from corpus import Corpus  # noqa: E402
from find import load  # noqa: E402
from ingest import fresh_server, generate  # noqa: E402

QIDO_TARGET_MS = 10.0  # p50 at 2,000 studies
QIDO_LARGE_TARGET_MS = 50.0  # p95 at 100,000 instances
METADATA_TARGET_MS = 5.0
ROOT = "/dicom-web"


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, float]:
        start = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - start


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def date_window(corpus: Corpus, hits: int) -> tuple[str, str, int]:
    """A StudyDate range holding about `hits` studies, and how many it holds exactly."""
    dates = sorted(study.date for study in corpus.studies)
    first = dates[len(dates) // 3]
    last = dates[min(len(dates) - 1, len(dates) // 3 + hits - 1)]
    expected = bisect.bisect_right(dates, last) - bisect.bisect_left(dates, first)
    return first, last, expected


def qido(client: Client, corpus: Corpus, repetitions: int) -> dict[str, Any]:
    first, last, expected = date_window(corpus, 100)
    path = f"{ROOT}/studies?StudyDate={first}-{last}"
    timings = []
    for repetition in range(repetitions + 5):
        status, body, elapsed = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"QIDO answered {status}: {body[:300]!r}")
        answers = json.loads(body)
        if len(answers) != expected:
            raise RuntimeError(f"QIDO found {len(answers)} studies, expected {expected}")
        if repetition >= 5:  # warm-up first
            timings.append(elapsed)
    return {"hits": expected, "range": f"{first}-{last}", **percentiles(timings)}


def metadata(client: Client, series_count: int, repetitions: int) -> dict[str, Any]:
    files = generate(series_count * 20, per_series=20)
    series = [(study, serie) for study, serie, _ in upload(client, files)[::20]]
    cold, cached = [], []
    for study, serie in series:
        path = f"{ROOT}/studies/{study}/series/{serie}/metadata"
        status, body, elapsed = client.request("GET", path)
        if status != 200 or len(json.loads(body)) != 20:
            raise RuntimeError(f"metadata answered {status}: {body[:300]!r}")
        cold.append(elapsed)
    study, serie = series[0]
    path = f"{ROOT}/studies/{study}/series/{serie}/metadata"
    for _ in range(repetitions):
        status, body, elapsed = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"metadata answered {status}")
        cached.append(elapsed)
    return {
        "series": len(series),
        "file_kb": len(files[0]) // 1024,
        "cold": percentiles(cold),
        "cached": percentiles(cached),
    }


def upload(client: Client, files: list[bytes]) -> list[tuple[str, str, str]]:
    """POST /instances each file; their (study, series, SOP instance) UIDs."""
    uids = []
    for data in files:
        status, body, _ = client.request(
            "POST", "/instances", data, {"Content-Type": "application/dicom"}
        )
        if status != 200:
            raise RuntimeError(f"upload answered {status}: {body[:300]!r}")
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        uids.append(
            (str(header.StudyInstanceUID), str(header.SeriesInstanceUID), header.SOPInstanceUID)
        )
    return uids


def large_series_metadata(client: Client, count: int, repetitions: int) -> dict[str, Any]:
    """WADO-RS metadata of one `count`-instance series: the first request (every file read,
    the answer cached) and the next ones (from the cache)."""
    study, series, _ = upload(client, generate(count, per_series=count))[0]
    path = f"{ROOT}/studies/{study}/series/{series}/metadata"
    timings = []
    for _ in range(repetitions + 1):
        status, body, elapsed = client.request("GET", path)
        if status != 200 or len(json.loads(body)) != count:
            raise RuntimeError(f"metadata answered {status}: {body[:300]!r}")
        timings.append(elapsed)
    return {
        "instances": count,
        "answer_kb": len(body) // 1024,
        "cold_ms": timings[0] * 1000,
        "cached": percentiles(timings[1:]),
    }


def frames(client: Client, count: int, repetitions: int) -> dict[str, Any]:
    """WADO-RS /frames/1 of 512x512 16-bit CT instances, uncompressed
    (application/octet-stream), over `count` instances in turn."""
    uids = upload(client, generate(count, per_series=count))
    accept = 'multipart/related; type="application/octet-stream"'
    timings = []
    for repetition in range(repetitions + 5):
        study, series, instance = uids[repetition % count]
        path = f"{ROOT}/studies/{study}/series/{series}/instances/{instance}/frames/1"
        status, body, elapsed = client.request("GET", path, headers={"Accept": accept})
        if status != 200 or len(body) < 512 * 512 * 2:
            raise RuntimeError(f"frames answered {status}: {body[:300]!r}")
        if repetition >= 5:
            timings.append(elapsed)
    return {"instances": count, **percentiles(timings)}


def stow(client: Client, count: int, per_request: int) -> dict[str, Any]:
    files = generate(count, per_series=per_request)
    boundary = uuid.uuid4().hex
    start = time.perf_counter()
    for offset in range(0, count, per_request):
        body = (
            b"".join(
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
                for data in files[offset : offset + per_request]
            )
            + f"--{boundary}--\r\n".encode()
        )
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        status, answer, _ = client.request(
            "POST", f"{ROOT}/studies", body, {"Content-Type": content_type}
        )
        if status != 200:
            raise RuntimeError(f"STOW answered {status}: {answer[:300]!r}")
    elapsed = time.perf_counter() - start
    return {"instances": count, "per_request": per_request, "instances_per_s": count / elapsed}


def rest_upload(client: Client, count: int) -> dict[str, Any]:
    """The same kind of instances as `stow`, new ones, one `POST /instances` each: the REST
    ingest rate that STOW-RS is measured against (same server, same client)."""
    files = generate(count, per_series=20)
    start = time.perf_counter()
    for data in files:
        status, answer, _ = client.request(
            "POST", "/instances", data, {"Content-Type": "application/dicom"}
        )
        if status != 200:
            raise RuntimeError(f"upload answered {status}: {answer[:300]!r}")
    elapsed = time.perf_counter() - start
    return {"instances": count, "instances_per_s": count / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--instances", type=int, default=10_000, help="corpus size (5 per study)")
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--series", type=int, default=10, help="20-instance series for metadata")
    parser.add_argument(
        "--large-series",
        type=int,
        default=500,
        help="instances of the series whose metadata is timed cold and cached (0: skip)",
    )
    parser.add_argument("--stow", type=int, default=400, help="instances sent with STOW-RS")
    parser.add_argument(
        "--large",
        type=int,
        default=100_000,
        help="corpus size of the second QIDO run, on its own server (0: skip it)",
    )
    args = parser.parse_args()

    corpus = Corpus.plan(args.instances)
    results: dict[str, Any] = {
        "backend": args.backend,
        "studies": len(corpus.studies),
        "load_before": os.getloadavg(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="pharos-dicomweb-") as tmp,
        fresh_server(args.backend, Path(tmp)) as server,
    ):
        print(f"loading {corpus.instance_count:,} instances ({len(corpus.studies):,} studies)")
        load(server.url, corpus, 4)
        client = Client(server.url)
        results["qido_study_date_range"] = qido(client, corpus, args.repetitions)
        print("qido", results["qido_study_date_range"], flush=True)
        results["series_metadata_20"] = metadata(client, args.series, args.repetitions)
        print("metadata", results["series_metadata_20"], flush=True)
        if args.large_series:
            results["series_metadata_large"] = large_series_metadata(
                client, args.large_series, min(args.repetitions, 50)
            )
            print("metadata of a large series", results["series_metadata_large"], flush=True)
        results["frames"] = frames(client, 20, args.repetitions)
        print("frames", results["frames"], flush=True)
        results["stow"] = stow(client, args.stow, 20)
        print("stow", results["stow"], flush=True)
        results["rest_upload"] = rest_upload(client, args.stow)
        print("POST /instances", results["rest_upload"], flush=True)
    if args.large:
        large = Corpus.plan(args.large)
        with (
            tempfile.TemporaryDirectory(prefix="pharos-dicomweb-large-") as tmp,
            fresh_server(args.backend, Path(tmp)) as server,
        ):
            print(f"loading {large.instance_count:,} instances ({len(large.studies):,} studies)")
            load(server.url, large, 4)
            client = Client(server.url)
            results["qido_study_date_range_large"] = {
                "instances": large.instance_count,
                **qido(client, large, args.repetitions),
            }
            print("qido large", results["qido_study_date_range_large"], flush=True)
    results["load_after"] = os.getloadavg()
    qido_p50 = results["qido_study_date_range"]["p50_ms"]
    cached_p50 = results["series_metadata_20"]["cached"]["p50_ms"]
    print(
        f"\nQIDO StudyDate range ({results['qido_study_date_range']['hits']} hits, "
        f"{results['studies']:,} studies): p50 {qido_p50:.2f} ms "
        f"(target < {QIDO_TARGET_MS:.0f} ms)\n"
        f"series metadata, 20 instances: cold p50 "
        f"{results['series_metadata_20']['cold']['p50_ms']:.2f} ms, cached p50 "
        f"{cached_p50:.2f} ms (target < {METADATA_TARGET_MS:.0f} ms)\n"
        + (
            f"series metadata, {results['series_metadata_large']['instances']} instances: "
            f"first {results['series_metadata_large']['cold_ms']:.0f} ms, cached p50 "
            f"{results['series_metadata_large']['cached']['p50_ms']:.1f} ms\n"
            if "series_metadata_large" in results
            else ""
        )
        + f"frames/1, 512x512 16-bit, uncompressed: p50 {results['frames']['p50_ms']:.2f} ms\n"
        f"STOW-RS: {results['stow']['instances_per_s']:.0f} instances/s "
        f"({results['stow']['per_request']} per request, 1 client); POST /instances: "
        f"{results['rest_upload']['instances_per_s']:.0f} instances/s (1 per request)\n"
        f"load average before/after: {results['load_before']} / {results['load_after']}"
    )
    if "qido_study_date_range_large" in results:
        large_run = results["qido_study_date_range_large"]
        print(
            f"QIDO StudyDate range ({large_run['hits']} hits, {large_run['instances']:,} "
            f"instances): p50 {large_run['p50_ms']:.2f} ms, p95 {large_run['p95_ms']:.2f} ms "
            f"(target p95 < {QIDO_LARGE_TARGET_MS:.0f} ms)"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
