"""The run-time options the services read (from the configuration, some changeable live)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ServiceOptions:
    overwrite_instances: bool = False
    storage_compression: bool = False
    store_md5: bool = True
    # Mutable at run time (PUT /tools/default-encoding); a str assignment is atomic.
    default_encoding: str = "Latin1"
    stable_age: float = 60.0
