"""Benchmark `POST /tools/find`: latency (p50/p95/max) of typical searches on a large index.

Loads a generated corpus (`bench/corpus.py`: by default 100,000 small instances, 10,000 patients,
20,000 studies) into a fresh `pharos serve` (SQLite, and/or a throw-away PostgreSQL database)
with 4 keep-alive uploaders, then times each query N times with random parameters, with and
without `"Expand": true`, and checks every answer against what the generator knows. Any error
answer or implausible result stops the run with a non-zero exit. Run from the repository root:

    .venv/bin/python bench/find.py --backend both
    .venv/bin/python bench/find.py --backend sqlite --instances 5000 --reuse /tmp/pharos-5k
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import http.client
import json
import math
import platform
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from corpus import FAMILY, FAMILY_NON_ASCII, FIRST_DAY, SPAN_DAYS, Corpus, names  # noqa: E402
from pharos.model.ids import hash_public_id  # noqa: E402
from tests.conftest import PG_ADMIN, ServerProcess  # noqa: E402

CORPUS_VERSION = 1  # bump when the generator changes, so `--reuse` folders are not mixed up
EXACT_TARGET_MS = 50.0
WILDCARD_TARGET_MS = 200.0


class BenchError(Exception):
    """A failure that ends the run: an error answer, an implausible result, a failed load."""


# --- the server -----------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Samples the server's resident memory every 50 ms; `peak()` returns and resets the peak."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self._peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self._peak = max(self._peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def peak(self) -> float:
        peak, self._peak = self._peak, 0
        return peak / 1e6


def get_json(url: str, path: str) -> Any:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(f"GET {path} answered HTTP {response.status}: {body[:300]!r}")
    return json.loads(body)


def load(url: str, corpus: Corpus, clients: int) -> dict[str, float]:
    """Upload every instance with `clients` keep-alive connections; files are made on the fly."""
    host, port = url.removeprefix("http://").split(":")
    work: queue.Queue[bytes | None] = queue.Queue(maxsize=4 * clients * 16)
    errors: list[str] = []
    total = corpus.instance_count
    step = max(1, total // 10)
    done = 0
    lock = threading.Lock()

    def progress() -> None:
        nonlocal done
        with lock:
            done += 1
            if done % step == 0:
                elapsed = time.perf_counter() - start
                print(f"  {done:>7,} / {total:,}  {done / elapsed:6.0f} instances/s", flush=True)

    def uploader() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        while (data := work.get()) is not None:
            if errors:
                continue  # drain the queue so the producer never blocks
            try:
                conn.request(
                    "POST", "/instances", body=data, headers={"Content-Type": "application/dicom"}
                )
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status != 200 or b'"Success"' not in body:
                errors.append(f"HTTP {response.status}: {body[:300]!r}")
            progress()
        conn.close()

    threads = [threading.Thread(target=uploader, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for data in corpus.files():
        if errors:
            break
        work.put(data)
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise BenchError(f"{len(errors)} uploads failed, first: {errors[0]}")
    return {"seconds": elapsed, "instances_per_s": total / elapsed}


def check_statistics(url: str, corpus: Corpus) -> None:
    stats = get_json(url, "/statistics")
    expected = {
        "CountPatients": len(corpus.patients),
        "CountStudies": len(corpus.studies),
        "CountSeries": corpus.series_count,
        "CountInstances": corpus.instance_count,
    }
    wrong = {key: stats.get(key) for key, value in expected.items() if stats.get(key) != value}
    if wrong:
        raise BenchError(f"the index does not hold the corpus: expected {expected}, got {wrong}")


# --- what the right answers are -------------------------------------------------------------

_EXTRA_ASCII = str.maketrans(
    {"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Ł": "L", "ł": "l", "Đ": "D", "đ": "d",
     "Þ": "TH", "þ": "th", "ð": "d", "\u0131": "i", "ß": "ss", "Œ": "OE", "œ": "oe"}
)  # fmt: skip
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Case-insensitive PN matching may fold more or less: ASCII letters only (SQLite's LIKE), all
# of Unicode, or accents too (Orthanc's normalisation). Any of these is a plausible answer.
FOLDS: tuple[Callable[[str], str], ...] = (
    lambda s: s.translate(_ASCII_UPPER),
    str.upper,
    lambda s: _strip_accents(s).upper(),
    lambda s: _strip_accents(s.translate(_EXTRA_ASCII)).upper(),
)


@dataclass
class Probe:
    """One query and what a right answer looks like."""

    query: dict[str, str]
    allowed: list[set[str]]  # the full result, as public IDs (several if matching may differ)
    item_ok: Callable[[dict[str, Any]], bool]  # a check of each expanded resource


class Answers:
    """Everything the benchmark needs to draw queries and to check their answers."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self.study_ids = [corpus.study_public_id(study) for study in corpus.studies]
        self.by_date = sorted(
            (study.date, self.study_ids[index]) for index, study in enumerate(corpus.studies)
        )
        self.dates = [date for date, _ in self.by_date]
        self.series_by_modality: dict[str, set[str]] = {}
        for study in corpus.studies:
            patient_id = corpus.patients[study.patient].patient_id
            for series in study.series:
                series_id = hash_public_id(f"{patient_id}|{study.uid}|{series.uid}")
                self.series_by_modality.setdefault(series.modality, set()).add(series_id)
        self.folded_names = [[fold(patient.name) for patient in corpus.patients] for fold in FOLDS]
        # Leading-wildcard needles are drawn from within the family names (ASCII letters).
        self.family_runs = [
            runs
            for name in names(FAMILY) + names(FAMILY_NON_ASCII)
            if (runs := re.findall(r"[A-Za-z]{3,}", name))
        ]
        window = max(1, round(100 * SPAN_DAYS / len(corpus.studies)))
        self.date_window_days = window

    def patient_study(self, rng: random.Random) -> Probe:
        patient = rng.choice(self.corpus.patients)
        pid = patient.patient_id
        return Probe(
            {"PatientID": pid},
            [{self.study_ids[index] for index in patient.studies}],
            lambda item: item.get("PatientMainDicomTags", {}).get("PatientID") == pid,
        )

    def patient_patient(self, rng: random.Random) -> Probe:
        patient = rng.choice(self.corpus.patients)
        pid = patient.patient_id
        return Probe(
            {"PatientID": pid},
            [{patient.public_id}],
            lambda item: item.get("MainDicomTags", {}).get("PatientID") == pid,
        )

    def name_wildcard(self, rng: random.Random) -> Probe:
        run = rng.choice(rng.choice(self.family_runs))
        start = rng.randrange(len(run) - 2)
        needle = rng.choice((str.upper, str.lower, str.title))(run[start : start + 3])
        allowed = []
        for fold, folded_names in zip(FOLDS, self.folded_names, strict=True):
            folded = fold(needle)
            matches = {
                self.study_ids[study]
                for patient, name in zip(self.corpus.patients, folded_names, strict=True)
                if folded in name
                for study in patient.studies
            }
            if matches not in allowed:
                allowed.append(matches)
        return Probe({"PatientName": f"*{needle}*"}, allowed, lambda item: True)

    def date_range(self, rng: random.Random) -> Probe:
        first_day = FIRST_DAY + datetime.timedelta(
            days=rng.randrange(SPAN_DAYS - self.date_window_days + 1)
        )
        last_day = first_day + datetime.timedelta(days=self.date_window_days - 1)
        first, last = first_day.strftime("%Y%m%d"), last_day.strftime("%Y%m%d")
        lo, hi = bisect.bisect_left(self.dates, first), bisect.bisect_right(self.dates, last)
        return Probe(
            {"StudyDate": f"{first}-{last}"},
            [{study_id for _, study_id in self.by_date[lo:hi]}],
            lambda item: first <= item.get("MainDicomTags", {}).get("StudyDate", "") <= last,
        )

    def modality(self, rng: random.Random) -> Probe:
        modality = rng.choice(sorted(self.series_by_modality))
        return Probe(
            {"Modality": modality},
            [self.series_by_modality[modality]],
            lambda item: item.get("MainDicomTags", {}).get("Modality") == modality,
        )


@dataclass
class Case:
    name: str
    level: str
    limit: int | None
    target_ms: float
    draw: Callable[[random.Random], Probe]


def cases(answers: Answers) -> list[Case]:
    return [
        Case("PatientID exact", "Study", None, EXACT_TARGET_MS, answers.patient_study),
        Case("PatientID exact", "Patient", None, EXACT_TARGET_MS, answers.patient_patient),
        Case("PatientName *abc*", "Study", None, WILDCARD_TARGET_MS, answers.name_wildcard),
        Case("StudyDate range", "Study", 100, EXACT_TARGET_MS, answers.date_range),
        Case("StudyDate range", "Study", None, EXACT_TARGET_MS, answers.date_range),
        Case("Modality", "Series", 100, EXACT_TARGET_MS, answers.modality),
    ]


def check(case: Case, expand: bool, probe: Probe, body: dict[str, Any], answer: Any) -> int:
    """Raise BenchError unless `answer` is a right answer to `probe`; return the hit count."""

    def fail(why: str) -> BenchError:
        return BenchError(f"implausible answer to POST /tools/find {json.dumps(body)}: {why}")

    if not isinstance(answer, list):
        raise fail(f"expected a JSON list, got {str(answer)[:200]}")
    if expand:
        for item in answer:
            if not isinstance(item, dict) or item.get("Type") != case.level:
                raise fail(f"expected expanded {case.level} resources, got {str(item)[:300]}")
            if not probe.item_ok(item):
                raise fail(f"a resource does not match the query: {str(item)[:500]}")
        ids = [item.get("ID") for item in answer]
    else:
        if not all(isinstance(item, str) for item in answer):
            raise fail(f"expected a list of IDs, got {str(answer)[:200]}")
        ids = answer
    found = set(ids)
    if len(found) != len(ids):
        raise fail("the same resource is listed twice")
    for allowed in probe.allowed:
        if case.limit is None or len(allowed) <= case.limit:
            if found == allowed:
                return len(ids)
        elif len(found) == case.limit and found <= allowed:
            return len(ids)
    expected = " or ".join(str(len(allowed)) for allowed in probe.allowed)
    limit = f" (Limit {case.limit})" if case.limit else ""
    raise fail(f"{len(ids)} hits, expected {expected}{limit} or the wrong resources")


# --- timing ---------------------------------------------------------------------------------


class FindClient:
    """One keep-alive connection posting to /tools/find."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)

    def find(self, body: dict[str, Any]) -> tuple[float, Any]:
        payload = json.dumps(body).encode()
        start = time.perf_counter()
        self.conn.request(
            "POST", "/tools/find", body=payload, headers={"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise BenchError(
                f"POST /tools/find {payload.decode()} answered HTTP {response.status}: "
                f"{data[:500].decode(errors='replace')}"
            )
        return elapsed, json.loads(data)


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def measure(
    url: str, answers: Answers, repetitions: int, warmup: int, seed: int
) -> list[dict[str, Any]]:
    client = FindClient(url)
    rng = random.Random(seed)
    results = []
    for case in cases(answers):
        for expand in (False, True):
            latencies, hits = [], []
            for attempt in range(warmup + repetitions):
                probe = case.draw(rng)
                body: dict[str, Any] = {"Level": case.level, "Query": probe.query}
                if expand:
                    body["Expand"] = True
                if case.limit is not None:
                    body["Limit"] = case.limit
                elapsed, answer = client.find(body)
                count = check(case, expand, probe, body, answer)
                if attempt >= warmup:
                    latencies.append(elapsed * 1000)
                    hits.append(count)
            ordered = sorted(latencies)
            result = {
                "query": case.name,
                "level": case.level,
                "limit": case.limit,
                "expand": expand,
                "p50_ms": statistics.median(ordered),
                "p95_ms": percentile(ordered, 0.95),
                "max_ms": ordered[-1],
                "mean_ms": statistics.fmean(ordered),
                "hits_min": min(hits),
                "hits_median": statistics.median(hits),
                "hits_max": max(hits),
                "target_p95_ms": case.target_ms,
                "samples_ms": [round(x, 3) for x in latencies],
            }
            results.append(result)
            print(format_row(result), flush=True)
    return results


def describe(result: dict[str, Any]) -> str:
    limit = f", Limit {result['limit']}" if result["limit"] else ""
    return f"{result['query']} ({result['level']}{limit})"


def format_row(result: dict[str, Any]) -> str:
    verdict = "ok" if result["p95_ms"] < result["target_p95_ms"] else "SLOW"
    hits = f"{result['hits_min']}/{result['hits_median']:g}/{result['hits_max']}"
    return (
        f"  {describe(result):38} {'yes' if result['expand'] else 'no':>6} "
        f"{result['p50_ms']:8.1f} {result['p95_ms']:8.1f} {result['max_ms']:8.1f}  {hits:>14}  "
        f"< {result['target_p95_ms']:.0f} {verdict}"
    )


TABLE_HEADER = (
    f"  {'query':38} {'expand':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  "
    f"{'hits min/med/max':>14}  p95 target"
)


# --- one backend ----------------------------------------------------------------------------


def reuse_state(folder: Path, marker: dict[str, int]) -> bool:
    """True if `folder` holds this corpus already; False if it is new or empty."""
    path = folder / "bench-corpus.json"
    if path.exists():
        found = json.loads(path.read_text())
        if found != marker:
            raise BenchError(
                f"{folder} holds another corpus ({found}, wanted {marker}): remove it or pick "
                "another folder"
            )
        return True
    if folder.exists() and any(folder.iterdir()):
        raise BenchError(f"{folder} is not empty and holds no complete corpus: remove it")
    folder.mkdir(parents=True, exist_ok=True)
    return False


def run_backend(
    backend: str, corpus: Corpus, answers: Answers, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    database = None
    workdir = tmp / backend
    loaded = False
    marker = {"instances": args.instances, "seed": args.seed, "version": CORPUS_VERSION}
    if backend == "postgres":
        database = f"pharos_bench_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
        except psycopg.OperationalError as exc:
            raise BenchError(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}") from exc
        config["PostgreSQL"] = {
            "EnableIndex": True,
            "Host": "127.0.0.1",
            "Port": 5432,
            "Database": database,
            "Username": "postgres",
            "Password": "",
        }
        workdir.mkdir()
    elif args.reuse:
        workdir = Path(args.reuse).resolve()
        loaded = reuse_state(workdir, marker)
    else:
        workdir.mkdir()

    server = ServerProcess(workdir, config)
    result: dict[str, Any] = {"backend": backend}
    try:
        server.start(timeout=600)
        assert server.process is not None
        sampler = Sampler(server.process.pid)
        sampler.start()
        print(f"\n== {backend} ({server.url}, {workdir}) ==", flush=True)
        if loaded:
            print(f"  reusing the corpus loaded in {workdir}", flush=True)
            result["load"] = {"reused": True}
        else:
            print(f"  loading with {args.clients} clients...", flush=True)
            result["load"] = load(server.url, corpus, args.clients)
            result["load"]["clients"] = args.clients
            result["load"]["peak_rss_mb"] = sampler.peak()
            print(
                f"  loaded {corpus.instance_count:,} instances in "
                f"{result['load']['seconds']:.1f} s: "
                f"{result['load']['instances_per_s']:.0f} instances/s "
                f"(peak server RSS {result['load']['peak_rss_mb']:.0f} MB)",
                flush=True,
            )
        check_statistics(server.url, corpus)
        if backend == "sqlite" and args.reuse and not loaded:
            (workdir / "bench-corpus.json").write_text(json.dumps(marker))
        sampler.peak()
        print(
            f"  {args.repetitions} repetitions per query after {args.warmup} warm-up ones\n"
            + TABLE_HEADER,
            flush=True,
        )
        result["queries"] = measure(server.url, answers, args.repetitions, args.warmup, args.seed)
        result["find_peak_rss_mb"] = sampler.peak()
        sampler.done.set()
        if args.reuse and backend == "sqlite":  # keep the folder tidy between runs
            server.log_path.unlink(missing_ok=True)
    except BaseException:
        tail = "\n".join(server.log().splitlines()[-15:])
        print(f"\n--- last lines of the server log ({server.log_path}) ---\n{tail}\n---",
              file=sys.stderr)  # fmt: skip
        raise
    finally:
        server.stop()
        if args.reuse and backend == "sqlite":
            server.config_path.unlink(missing_ok=True)
        if database is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return result


def summary(results: list[dict[str, Any]]) -> str:
    """p50/p95 of every query, one column pair per backend and Expand setting."""
    lines = []
    head = "".join(f"{r['backend'] + ' ids':>16}{r['backend'] + ' expand':>18}" for r in results)
    lines.append(f"{'p50 / p95 ms':44}{head}")
    rows = results[0]["queries"][::2]
    for index, row in enumerate(rows):
        cells = ""
        for result in results:
            for expanded in result["queries"][2 * index : 2 * index + 2]:
                cell = f"{expanded['p50_ms']:.1f} / {expanded['p95_ms']:.1f}"
                cells += f"{cell:>16}" if not expanded["expand"] else f"{cell:>18}"
        lines.append(f"{describe(row):44}{cells}")
    return "\n".join(lines)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--instances", type=int, default=100_000, help="corpus size (>= 10)")
    parser.add_argument("--repetitions", type=int, default=50, help="timed queries per case")
    parser.add_argument("--warmup", type=int, default=5, help="untimed queries per case first")
    parser.add_argument("--clients", type=int, default=4, help="parallel uploaders")
    parser.add_argument("--seed", type=int, default=42, help="seed of the corpus and queries")
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="SQLite only: load the corpus into DIR once and reuse it in later runs",
    )
    args = parser.parse_args()
    if args.instances < 10 or args.repetitions < 1 or args.warmup < 0 or args.clients < 1:
        parser.error("need --instances >= 10, --repetitions >= 1, --warmup >= 0, --clients >= 1")

    corpus = Corpus.plan(args.instances, args.seed)
    answers = Answers(corpus)
    print(
        f"corpus: {corpus.instance_count:,} instances, {len(corpus.patients):,} patients, "
        f"{len(corpus.studies):,} studies, {corpus.series_count:,} series (seed {args.seed}); "
        f"date windows of {answers.date_window_days} days",
        flush=True,
    )
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="pharos-bench-find-") as tmp:
            for backend in backends:
                results.append(run_backend(backend, corpus, answers, args, Path(tmp)))
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1

    print("\n" + summary(results))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"find-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "benchmark": "find",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": git_commit(),
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
        "instances": corpus.instance_count,
        "patients": len(corpus.patients),
        "studies": len(corpus.studies),
        "series": corpus.series_count,
        "seed": args.seed,
        "repetitions": args.repetitions,
        "warmup": args.warmup,
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2))
    print(f"results written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
