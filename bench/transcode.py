"""Benchmark transcoding: in-process throughput (frames/s, MB/s of pixels, compression ratio)
of `pharos.dicom.transcode` to every target (the file written included, not its parsing), and
back to explicit little endian, for a 512x512 16-bit CT and a colour image, and
the latency (p50/p95) of `GET /instances/{id}/file?transcode=` through the REST API of a fresh
`pharos serve` (SQLite).

The CT is ../shared/dicom-corpus/SignedCT.dcm (a real 512x512 int16 CT) when present, else the
generated noise CT of bench/ingest.py; the colour image is a generated 640x480 RGB gradient
with noise. Run from the repository root:

    .venv/bin/python bench/transcode.py --seconds 1 --requests 50
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

import numpy as np
import pydicom
from pydicom.dataset import Dataset

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ingest import fresh_server, generate  # noqa: E402

from pharos.dicom.encoders import LOSSLESS_TARGETS, LOSSY_TARGETS  # noqa: E402
from pharos.dicom.transcode import (  # noqa: E402
    UNCOMPRESSED_TARGETS,
    TranscodingError,
    transcode,
    transcode_file,
)
from tests.conftest import CORPUS  # noqa: E402
from tests.dicomgen import make_dataset, to_bytes  # noqa: E402

EXPLICIT = "1.2.840.10008.1.2.1"
TARGETS = sorted(UNCOMPRESSED_TARGETS) + sorted(LOSSLESS_TARGETS) + sorted(LOSSY_TARGETS)
REST_TARGETS = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
]


def ct_file() -> tuple[str, bytes]:
    path = CORPUS / "SignedCT.dcm"
    if path.is_file():
        return "real CT 512x512 int16", path.read_bytes()
    return "generated CT 512x512 int16 (noise)", generate(1)[0]


def color_file() -> tuple[str, bytes]:
    rows, columns = 480, 640
    y, x = np.mgrid[0:rows, 0:columns]
    noise = np.random.default_rng(0).normal(0, 4, (rows, columns, 3))
    planes = np.stack([x * 255 / columns, y * 255 / rows, (x + y) * 255 / (rows + columns)], -1)
    pixels = np.clip(planes + noise, 0, 255).astype(np.uint8)
    ds = make_dataset(rows=rows, columns=columns)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    return "generated RGB 640x480 uint8", to_bytes(ds)


def per_call(function: Callable[[], object], seconds: float) -> float:
    """Median seconds of one call, over about `seconds` (5 calls at least)."""
    function()
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 5:
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def pixel_bytes(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    return frames * int(ds.Rows) * int(ds.Columns) * samples * (int(ds.BitsAllocated) // 8)


def write(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def converter(ds: Dataset, target: str) -> Callable[[], bytes]:
    return lambda: write(transcode(ds, target, allow_lossy=True))


def in_process(data: bytes, seconds: float) -> list[dict[str, Any]]:
    ds = pydicom.dcmread(io.BytesIO(data))
    size = pixel_bytes(ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows = []
    for target in TARGETS:
        row: dict[str, Any] = {"target": target, "name": pydicom.uid.UID(target).name}
        try:
            result = transcode(ds, target, allow_lossy=True)
        except TranscodingError as exc:
            row["refused"] = str(exc).split(": ", 1)[-1][:60]
            rows.append(row)
            continue
        elapsed = per_call(converter(ds, target), seconds)
        row.update(
            ms=elapsed * 1000,
            frames_per_s=frames / elapsed,
            mb_per_s=size / 1e6 / elapsed,
            ratio=size / max(1, len(result.PixelData)),
        )
        # ... and the way back (decoding), for the compressed ones.
        if pydicom.uid.UID(target).is_compressed:
            encoded = pydicom.dcmread(io.BytesIO(write(result)))
            back = per_call(converter(encoded, EXPLICIT), seconds)
            row["decode_ms"] = back * 1000
        rows.append(row)
    return rows


def upload(connection: http.client.HTTPConnection, data: bytes) -> str:
    connection.request("POST", "/instances", body=data)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"upload failed: {response.status} {body[:200]!r}")
    return str(json.loads(body)["ID"])


def latencies(connection: http.client.HTTPConnection, path: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        connection.request("GET", path)
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


def rest(files: dict[str, bytes], count: int) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as workdir, fresh_server("sqlite", Path(workdir)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        for name, data in files.items():
            instance = upload(connection, data)
            for target in ["", *REST_TARGETS]:
                path = f"/instances/{instance}/file"
                if target:
                    try:  # only what the image can go to
                        transcode_file(data, target)
                    except TranscodingError:
                        continue
                    path += f"?transcode={target}"
                latencies(connection, path, 3)  # warm-up
                timings = latencies(connection, path, count)
                results.append(
                    {"instance": name, "target": target or "(none)", **percentiles(timings)}
                )
        connection.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per target, in process")
    parser.add_argument("--requests", type=int, default=50, help="per instance and target")
    args = parser.parse_args()
    files = dict([ct_file(), color_file()])

    report: dict[str, Any] = {"in_process": {}, "rest": []}
    header = f"{'target':44} {'ms':>8} {'frames/s':>9} {'MB/s':>8} {'ratio':>6} {'back ms':>8}"
    for name, data in files.items():
        rows = in_process(data, args.seconds)
        report["in_process"][name] = rows
        print(f"\n{name} (in process, median)\n{header}")
        for row in rows:
            label = f"{row['name'][:34]} {row['target'].split('.')[-1]:>6}"
            if "refused" in row:
                print(f"{label:44} refused: {row['refused']}")
                continue
            back = f"{row['decode_ms']:8.1f}" if "decode_ms" in row else f"{'':>8}"
            print(
                f"{label:44} {row['ms']:8.1f} {row['frames_per_s']:9.1f} "
                f"{row['mb_per_s']:8.1f} {row['ratio']:6.2f} {back}"
            )
    report["rest"] = rest(files, args.requests)
    print("\nGET /instances/{id}/file?transcode= (REST, sequential)")
    print(f"{'instance':36} {'target':24} {'p50 ms':>8} {'p95 ms':>8}")
    for row in report["rest"]:
        print(f"{row['instance']:36} {row['target']:24} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}")
    print(json.dumps(report), file=sys.stderr)


if __name__ == "__main__":
    main()
