"""Benchmark previews: latency (p50/p95) of `GET /instances/{id}/preview` through the REST API
of a fresh `pharos serve` (SQLite), and in-process decode / render / encode throughput.

Instances: the generated 512x512 16-bit CT of bench/ingest.py (noise: the worst case for zlib),
and from ../shared/dicom-corpus a real 512x512 16-bit CT and JPEG 2000 files, when present.
Requests are sequential over one keep-alive connection. Run from the repository root:

    .venv/bin/python bench/preview.py --requests 200
    .venv/bin/python bench/preview.py --thumbnails --requests 100

`--thumbnails` measures `GET /instances/{id}/thumbnail` instead on generated 512x512 CTs: the
first request of each instance (render, encode, store the cached attachment) against the
following ones (read from the cache).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ingest import fresh_server, generate  # noqa: E402

from pharos.dicom import image_formats, rendering  # noqa: E402
from pharos.dicom.pixels import decode_frame, image_info  # noqa: E402
from tests.conftest import CORPUS  # noqa: E402

CORPUS_FILES = {
    "real CT 512x512 int16 (explicit LE)": "SignedCT.dcm",
    "JPEG 2000 lossless 1024x256 int16": "TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm",
    "JPEG 2000 512x512 int16": "TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm",
    "JPEG 2000 YBR_ICT 1660x965 RGB": "Formats/jp2k91YBR-ICT.dcm",
}


def instances() -> dict[str, bytes]:
    files = {"generated CT 512x512 int16 (noise)": generate(1)[0]}
    for name, relative in CORPUS_FILES.items():
        path = CORPUS / relative
        if path.is_file():
            files[name] = path.read_bytes()
    return files


def upload(connection: http.client.HTTPConnection, data: bytes) -> str:
    connection.request("POST", "/instances", body=data)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"upload failed: {response.status} {body[:200]!r}")
    return str(json.loads(body)["ID"])


def latencies(
    connection: http.client.HTTPConnection, path: str, headers: dict[str, str], count: int
) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        timings.append(time.perf_counter() - start)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
    return timings


def percentiles(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000,
    }


def per_call(function: Callable[[], object], seconds: float = 1.0) -> float:
    """Median milliseconds of one call, over about `seconds`."""
    function()
    timings = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 5:
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def in_process(data: bytes) -> dict[str, float]:
    """Where the time goes: parse, decode, the grayscale pipeline, PNG and JPEG encoding."""
    ds = pydicom.dcmread(io.BytesIO(data))
    info = image_info(ds)
    frame = decode_frame(ds, 0, info)
    image = rendering.preview(frame, ds, info)
    decode_ms = per_call(lambda: decode_frame(ds, 0, info))
    return {
        "parse_ms": per_call(lambda: pydicom.dcmread(io.BytesIO(data))),
        "decode_ms": decode_ms,
        "decode_mb_per_s": frame.nbytes / 1e6 / (decode_ms / 1000),
        "render_ms": per_call(lambda: rendering.preview(frame, ds, info)),
        "png_ms": per_call(lambda: image_formats.encode_png(image)),
        "jpeg_ms": per_call(lambda: image_formats.encode_jpeg(image)),
    }


def thumbnails(count: int) -> None:
    """First (generated) against cached thumbnail latency, over `count` distinct instances."""
    files = generate(count)
    with tempfile.TemporaryDirectory() as workdir, fresh_server("sqlite", Path(workdir)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        ids = [upload(connection, data) for data in files]
        first = [latencies(connection, f"/instances/{i}/thumbnail", {}, 1)[0] for i in ids]
        cached = [latencies(connection, f"/instances/{i}/thumbnail", {}, 1)[0] for i in ids]
        preview = [
            latencies(connection, f"/instances/{i}/preview", {"Accept": "image/jpeg"}, 1)[0]
            for i in ids
        ]
        connection.close()
    rows = {
        "thumbnail, first (generated)": percentiles(first),
        "thumbnail, cached": percentiles(cached),
        "preview JPEG 512x512 (for scale)": percentiles(preview),
    }
    print(f"{'512x512 CT, ' + str(count) + ' instances':42} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in rows.items():
        print(f"{name:42} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}")
    print(json.dumps({"thumbnails": rows}), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per instance and format")
    parser.add_argument(
        "--thumbnails", action="store_true", help="thumbnails: first against cached requests"
    )
    args = parser.parse_args()
    if args.thumbnails:
        thumbnails(args.requests)
        return

    files = instances()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as workdir, fresh_server("sqlite", Path(workdir)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        for name, data in files.items():
            id = upload(connection, data)
            for fmt, headers in (("png", {}), ("jpeg", {"Accept": "image/jpeg"})):
                path = f"/instances/{id}/preview"
                latencies(connection, path, headers, 10)  # warm-up
                timings = latencies(connection, path, headers, args.requests)
                results.append({"instance": name, "format": fmt, **percentiles(timings)})
        connection.close()
    breakdown = {name: in_process(data) for name, data in files.items()}

    print(f"{'instance':42} {'fmt':5} {'p50 ms':>8} {'p95 ms':>8}")
    for row in results:
        print(f"{row['instance']:42} {row['format']:5} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}")
    print()
    columns = ["parse_ms", "decode_ms", "decode_mb_per_s", "render_ms", "png_ms", "jpeg_ms"]
    print(f"{'in process (median)':42} " + " ".join(f"{c:>15}" for c in columns))
    for name, row in breakdown.items():
        print(f"{name:42} " + " ".join(f"{row[c]:15.2f}" for c in columns))
    print(json.dumps({"latency": results, "in_process": breakdown}), file=sys.stderr)


if __name__ == "__main__":
    main()
