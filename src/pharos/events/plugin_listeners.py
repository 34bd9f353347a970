"""The plugins' change and stability listeners (`pharos_on_change`, `pharos_on_stable`, Lua's
OnStable*) as one event sink: they are told from the change log with a durable cursor, so a
change is told once even when several processes share a PostgreSQL index (the process
holding the sink's lease tells it), and changes committed while the server was down are told
after a restart. Stored-instance listeners stay with the process that received the instance.
"""

from __future__ import annotations

import logging
from typing import Any

from pharos.index.base import Index
from pharos.model.changes import ChangeType
from pharos.plugins.manager import PluginManager

log = logging.getLogger(__name__)

_STABLE = {
    ChangeType.STABLE_PATIENT.title,
    ChangeType.STABLE_STUDY.title,
    ChangeType.STABLE_SERIES.title,
}
# The listeners run on the plugin manager's thread: a publish waits for them (bounded), so
# that the cursor moves past what they were actually told.
_WAIT = 300.0


class PluginListenersSink:
    name = "plugins"

    def __init__(self, index: Index, plugins: PluginManager):
        self._index = index
        self._plugins = plugins

    @staticmethod
    def wanted(plugins: PluginManager) -> bool:
        return plugins.has("pharos_on_change") or plugins.has("pharos_on_stable")

    def publish(self, events: list[dict[str, Any]]) -> None:
        stable_listeners = self._plugins.has("pharos_on_stable")
        for change in events:
            self._plugins.notify_change(change)
            if stable_listeners and change.get("ChangeType") in _STABLE:
                resource_id = str(change["ID"])
                level = str(change["ResourceType"])  # "Patient", "Study", "Series"
                self._plugins.notify_stable(level, resource_id, self._main_tags(resource_id))
        # A listener failing is the listener's business (logged, isolated): not retried.
        if not self._plugins.flush(_WAIT):
            raise TimeoutError(f"plugin listeners busy for more than {_WAIT:.0f} s")

    def _main_tags(self, public_id: str) -> dict[str, Any]:
        ref = self._index.lookup(public_id)
        if ref is None:  # deleted meanwhile
            return {}
        return dict(self._index.main_tags(ref))
