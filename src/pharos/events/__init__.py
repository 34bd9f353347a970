"""Events: the change log followed by sequence number and published to sinks."""

from pharos.events.follower import EventFollower, SinkFollower
from pharos.events.plugin_listeners import PluginListenersSink

__all__ = ["EventFollower", "PluginListenersSink", "SinkFollower"]
