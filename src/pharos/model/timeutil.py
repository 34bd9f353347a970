"""Timestamps in the compact ISO form Orthanc uses everywhere (`20240131T235959`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso_from_epoch(epoch: float, utc: bool = True) -> str:
    moment = datetime.fromtimestamp(epoch, UTC) if utc else datetime.fromtimestamp(epoch)
    return moment.strftime("%Y%m%dT%H%M%S")


def now_iso(utc: bool = True) -> str:
    return iso_from_epoch(time.time(), utc)
