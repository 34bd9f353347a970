"""Orthanc's log levels ("default", "verbose", "trace") and log categories (Orthanc 1.9+),
mapped onto Python loggers, changeable while the server runs (/tools/log-level*)."""

from __future__ import annotations

import logging
import threading

LEVELS = {"default": logging.WARNING, "verbose": logging.INFO, "trace": logging.DEBUG}
# Each category: Pharos's loggers, and libraries' loggers told only at "trace" (they are
# very talkative: every PDU, every SQL statement).
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "generic": (("pharos",), ()),
    "plugins": (("pharos.plugins",), ()),
    "http": (("pharos.http",), ()),
    "dicom": (("pharos.dimse",), ("pynetdicom",)),
    "sqlite": (("pharos.index",), ("sqlalchemy.engine",)),
    "jobs": (("pharos.jobs",), ()),
    "lua": (("pharos.lua",), ()),
}


def level_name(level: int) -> str:
    if level <= logging.DEBUG:
        return "trace"
    if level <= logging.INFO:
        return "verbose"
    return "default"


def parse_level(text: str) -> str:
    """A level name, or ValueError saying which names are allowed."""
    name = text.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"Unknown log level {text.strip()!r}: default, verbose or trace")
    return name


class LogLevels:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._main = level_name(logging.getLogger("pharos").getEffectiveLevel())

    @property
    def main(self) -> str:
        return self._main

    def category(self, name: str) -> str:
        ours, _ = CATEGORIES[name]
        return level_name(logging.getLogger(ours[0]).getEffectiveLevel())

    def set_main(self, level: str) -> None:
        """Every category at `level`."""
        with self._lock:
            self._main = level
            for name in CATEGORIES:
                self._set(name, level)

    def set_category(self, name: str, level: str) -> None:
        with self._lock:
            if name == "generic":
                # The other categories are children of "pharos": keep them where they are.
                for other, (loggers, _) in CATEGORIES.items():
                    for logger_name in loggers if other != "generic" else ():
                        logger = logging.getLogger(logger_name)
                        if logger.level == logging.NOTSET:
                            logger.setLevel(logger.getEffectiveLevel())
            self._set(name, level)

    @staticmethod
    def _set(name: str, level: str) -> None:
        ours, libraries = CATEGORIES[name]
        for logger_name in ours:
            logging.getLogger(logger_name).setLevel(LEVELS[level])
        for logger_name in libraries:
            library_level = logging.DEBUG if level == "trace" else logging.WARNING
            logging.getLogger(logger_name).setLevel(library_level)
