"""`pharos import`: read files from the paths given and hand them to parallel senders.

The calling thread walks the sources (reading and decompressing), a pool of `jobs` threads
sends; about 2 x `jobs` files at most are held in memory at once. Exit status: 0 when every DICOM
file was stored or already stored, 1 when any failed, 2 for usage errors, 130 on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from pharos.config import ConfigError, load_config
from pharos.importer.outcomes import Outcome, ServerGone, UsageError
from pharos.importer.progress import NoProgressBar, ProgressBar
from pharos.importer.senders import HttpSender, Sender
from pharos.importer.sources import DicomFile, Skipped, count_entries, iter_entries
from pharos.importer.stats import ImportStats

DEFAULT_JOBS = 4
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run_import(
    paths: Sequence[str],
    url: str | None = None,
    config_paths: Sequence[str] = (),
    jobs: int = DEFAULT_JOBS,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        _check_arguments(paths, jobs)
        sender = open_sender(url, config_paths, jobs, err)
    except UsageError as exc:
        print(f"pharos import: {exc}", file=err)
        return EXIT_USAGE

    print(f"Importing into {sender.describe()}", file=out, flush=True)
    stats = ImportStats()
    interactive = out.isatty()
    if interactive:
        # The total is only for the bar: counted meanwhile, shown once known.
        threading.Thread(target=_count, args=(paths, stats), daemon=True).start()
    try:
        with ProgressBar(stats, out) if interactive else NoProgressBar() as bar:
            interrupted = import_entries(paths, sender, jobs, stats, bar.refresh)
    finally:
        sender.close()
    stats.finish()
    out.write(stats.summary(interrupted))
    out.flush()
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if stats.failed else EXIT_OK


def open_sender(url: str | None, config_paths: Sequence[str], jobs: int, err: TextIO) -> Sender:
    if url is not None:
        sender = HttpSender(url, jobs)
        try:
            sender.check()
        except UsageError:
            sender.close()
            raise
        return sender
    try:
        config = load_config(config_paths)
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None
    for warning in config.warnings:
        print(f"pharos import: configuration: {warning}", file=err)
    # Imported here: it loads the whole server, which sending over HTTP does not need.
    from pharos.importer.local import LocalSender

    return LocalSender(config)


def import_entries(
    paths: Sequence[str],
    sender: Sender,
    jobs: int,
    stats: ImportStats,
    notify: Callable[[], None] = lambda: None,
) -> bool:
    """Send every DICOM file under `paths`; True if interrupted (Ctrl-C). `notify` is called
    after each file."""
    slots = threading.BoundedSemaphore(2 * jobs)
    stop = threading.Event()

    def send(entry: DicomFile) -> None:
        try:
            outcome = sender.send(entry.data)
        except ServerGone as exc:
            outcome = Outcome.failed(f"the server stopped answering: {exc}")
            stats.stopped = f"the server stopped answering ({exc})"
            stop.set()
        except Exception as exc:  # a bug must not hang the import: that file fails
            outcome = Outcome.failed(f"{type(exc).__name__}: {exc}")
        finally:
            slots.release()
        stats.record(entry.name, len(entry.data), outcome)
        notify()

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pharos-import")
    try:
        for entry in iter_entries(paths):
            if stop.is_set():
                break
            if isinstance(entry, DicomFile):
                slots.acquire()
                pool.submit(send, entry)
            elif isinstance(entry, Skipped):
                stats.skip(entry.reason)
            else:
                stats.fail(entry.name, entry.reason)
            notify()
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        # Files being sent finish (their outcome is then known); queued ones are dropped.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        return True
    return False


def _check_arguments(paths: Sequence[str], jobs: int) -> None:
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (not {jobs})")
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")


def _count(paths: Sequence[str], stats: ImportStats) -> None:
    with contextlib.suppress(Exception):  # the bar then shows no total
        stats.total = count_entries(paths)
