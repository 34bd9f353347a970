"""The plugin manager: filters (first refusal wins, failures refuse), listeners (in order, on
their own thread, one failing never affects the others), life cycle and information."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pharos.plugins import (
    IncomingHttpRequest,
    IncomingInstance,
    PluginContext,
    PluginManager,
    Refusal,
    hookimpl,
    origin_dict,
)
from tests.dicomgen import make_dicom

REQUEST = IncomingHttpRequest("GET", "/system", "127.0.0.1", "", {}, {})


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.threads: set[str] = set()

    @hookimpl
    def pharos_on_job(self, event: str, job_id: str, job_type: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append(("job", (event, job_id, job_type)))

    @hookimpl
    def pharos_on_change(self, change: dict[str, Any]) -> None:
        self.calls.append(("change", change["Seq"]))

    @hookimpl
    def pharos_on_stored_instance(
        self, instance_id: str, simplified_tags: dict[str, Any], origin: dict[str, str]
    ) -> None:
        self.calls.append(("stored", (instance_id, simplified_tags["PatientID"], origin)))


class Failing:
    @hookimpl
    def pharos_on_job(self, event: str) -> None:
        raise RuntimeError("listener bug")

    @hookimpl
    def pharos_incoming_http_request_filter(self, request: IncomingHttpRequest) -> bool:
        raise RuntimeError("filter bug")


def test_no_plugin_is_a_no_op() -> None:
    manager = PluginManager()
    assert not manager.has("pharos_incoming_instance_filter")
    assert manager.filter_instance(b"not even DICOM", {"RequestOrigin": "RestApi"}) is None
    assert manager.filter_http(REQUEST) is None
    assert manager.filter_find({"0010,0020": "X"}, {}) == {"0010,0020": "X"}
    assert manager.accepts_syntax("A", "1.2.3.4", "B", "Jpeg") is None
    manager.notify_job("Submitted", "1", "T")  # no listener thread started
    assert manager.wait_idle(0)
    assert manager.names() == [] and manager.infos() == {} and manager.routers() == []


def test_instance_filter_sees_dataset_tags_and_origin() -> None:
    seen: list[IncomingInstance] = []

    class OnlyCt:
        @hookimpl
        def pharos_incoming_instance_filter(self, instance: IncomingInstance) -> bool:
            seen.append(instance)
            return bool(instance.dataset.Modality == "CT")

    manager = PluginManager()
    manager.register(OnlyCt(), "only-ct")
    origin = origin_dict("DicomProtocol", "10.0.0.1", "MODALITY", "PHAROS")
    assert manager.filter_instance(make_dicom(Modality="CT"), origin) is None
    refusal = manager.filter_instance(make_dicom(Modality="MR", PatientID="P2"), origin)
    assert refusal == Refusal("only-ct", "filtered out")
    assert seen[1].simplified_tags["PatientID"] == "P2"
    assert seen[1].origin == {
        "RequestOrigin": "DicomProtocol",
        "RemoteIp": "10.0.0.1",
        "RemoteAet": "MODALITY",
        "CalledAet": "PHAROS",
    }
    assert "PixelData" not in seen[1].dataset  # read without pixels; the bytes are there
    assert seen[1].data.startswith(b"\0" * 128 + b"DICM")


def test_first_refusal_wins_and_a_failing_filter_refuses(caplog: pytest.LogCaptureFixture) -> None:
    asked: list[str] = []

    class Yes:
        @hookimpl
        def pharos_incoming_http_request_filter(self) -> bool:
            asked.append("yes")
            return True

    manager = PluginManager()
    manager.register(Failing(), "failing")
    manager.register(Yes(), "yes")  # registered last: asked first
    with caplog.at_level(logging.ERROR, "pharos.plugins"):
        refusal = manager.filter_http(REQUEST)
    assert asked == ["yes"]
    assert refusal is not None and refusal.plugin == "failing"
    assert "filter bug" in refusal.reason
    assert "filter bug" in caplog.text
    assert refusal.message("GET /system") == (
        "GET /system refused by plugin failing: filter failed: filter bug"
    )


def test_find_filters_chain_rewrites_and_may_refuse() -> None:
    class AddModality:
        @hookimpl
        def pharos_incoming_find_filter(self, query: dict[str, str]) -> dict[str, str]:
            return {**query, "0008,0060": "CT"}

    class DropName:
        @hookimpl
        def pharos_incoming_find_filter(self, query: dict[str, str]) -> dict[str, Any]:
            query.pop("0010,0010", None)
            return {**query, "0010,0030": None}  # None: an empty value

    manager = PluginManager()
    manager.register(AddModality(), "add")
    manager.register(DropName(), "drop")
    query = {"0010,0010": "DOE*", "0008,0052": "STUDY"}
    assert manager.filter_find(query, {}) == {
        "0008,0052": "STUDY",
        "0010,0030": "",
        "0008,0060": "CT",
    }
    assert query == {"0010,0010": "DOE*", "0008,0052": "STUDY"}  # the caller's is untouched

    class Refuse:
        @hookimpl
        def pharos_incoming_find_filter(self, origin: dict[str, str]) -> bool:
            return origin.get("RemoteAet") != "INTRUDER"

    manager.register(Refuse(), "refuse")
    assert isinstance(manager.filter_find(query, {"RemoteAet": "INTRUDER"}), Refusal)


def test_outgoing_find_filter_failure_keeps_the_query() -> None:
    class Broken:
        @hookimpl
        def pharos_outgoing_find_filter(self, query: dict[str, str], modality: str) -> None:
            raise ValueError(modality)

    manager = PluginManager()
    manager.register(Broken(), "broken")
    assert manager.filter_outgoing_find({"0010,0020": "1"}, "pacs") == {"0010,0020": "1"}


def test_acceptance_first_answer_wins() -> None:
    class NoJpeg:
        @hookimpl
        def pharos_accept_transfer_syntax(self, syntax_group: str) -> bool | None:
            return False if syntax_group == "Jpeg" else None

        @hookimpl
        def pharos_accept_unknown_sop_class(self, aet: str) -> bool:
            return aet == "FRIEND"

    manager = PluginManager()
    manager.register(NoJpeg(), "no-jpeg")
    assert manager.accepts_syntax("A", "ip", "B", "Jpeg") is False
    assert manager.accepts_syntax("A", "ip", "B", "Rle") is None
    assert manager.accepts_unknown_sop_class("FRIEND", "ip", "B") is True
    assert manager.accepts_unknown_sop_class("OTHER", "ip", "B") is False


def test_listeners_run_in_order_on_their_thread_and_survive_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    manager = PluginManager()
    manager.register(recorder, "recorder")
    manager.register(Failing(), "failing")
    with caplog.at_level(logging.ERROR, "pharos.plugins"):
        for number in range(20):
            manager.notify_job("Submitted", str(number), "DicomModalityStore")
        manager.notify_change({"Seq": 7})
        data = make_dicom(PatientID="P9")
        manager.notify_stored("id-1", data, {"Origin": "RestApi"}, {"RequestOrigin": "RestApi"})
        assert manager.wait_idle(10)
    assert [call for call in recorder.calls if call[0] == "job"] == [
        ("job", ("Submitted", str(n), "DicomModalityStore")) for n in range(20)
    ]
    assert recorder.calls[-2:] == [
        ("change", 7),
        ("stored", ("id-1", "P9", {"RequestOrigin": "RestApi"})),
    ]
    assert recorder.threads == {"pharos-plugin-listeners"}
    failures = [r for r in caplog.records if "plugin failing failed" in r.getMessage()]
    assert len(failures) == 20
    manager.shutdown()


def test_registration_checks_hook_names_and_arguments() -> None:
    class Misspelt:
        @hookimpl
        def pharos_on_stored(self, instance_id: str) -> None: ...

    class WrongArgument:
        @hookimpl
        def pharos_on_job(self, job: str) -> None: ...

    manager = PluginManager()
    with pytest.raises(pluggy.PluginValidationError):
        manager.register(Misspelt(), "misspelt")
    with pytest.raises(pluggy.PluginValidationError):
        manager.register(WrongArgument(), "wrong")
    assert manager.names() == []
    manager.register(Recorder(), "recorder")
    with pytest.raises(ValueError, match="already registered"):
        manager.register(Recorder(), "recorder")


def test_life_cycle_routes_and_information(tmp_path: Path) -> None:
    events: list[str] = []

    class Full:
        __version__ = "1.2.3"

        @hookimpl
        def pharos_startup(self, context: PluginContext) -> None:
            events.append(f"start {context.config['Name']} {context.data_dir.name}")

        @hookimpl
        def pharos_shutdown(self) -> None:
            events.append("stop")

        @hookimpl
        def pharos_routes(self) -> list[Any]:
            return ["a router"]

        @hookimpl
        def pharos_plugin_info(self) -> dict[str, Any]:
            return {"ID": "full", "Description": "Does everything"}

    class Bare:
        @hookimpl
        def pharos_startup(self) -> None:
            raise RuntimeError("start-up bug")  # logged; the others still start

    manager = PluginManager()
    manager.register(Full(), "full-plugin")
    manager.register(Bare(), "bare")
    manager.startup(PluginContext({"Name": "Pharos"}, rest=None, data_dir=tmp_path))  # type: ignore[arg-type]
    manager.shutdown()
    assert events == [f"start Pharos {tmp_path.name}", "stop"]
    assert manager.routers() == ["a router"]
    infos = manager.infos()
    assert infos == {
        "bare": {"ID": "bare", "Version": ""},
        "full": {"ID": "full", "Version": "1.2.3", "Description": "Does everything"},
    }


class Extensions:
    """Offers storage backends and event sinks, some of them unusable."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    @hookimpl
    def pharos_storage_areas(self) -> dict[str, Any]:
        return {"Shared": lambda config, storage_dir: self.suffix, "Own" + self.suffix: len}

    @hookimpl
    def pharos_event_sinks(self) -> list[Any]:
        class Sink:
            name = "sink" + self.suffix

            def publish(self, events: list[dict[str, Any]]) -> None:
                pass

        return [Sink(), object()]


class FailingExtensions:
    @hookimpl
    def pharos_storage_areas(self) -> dict[str, Any]:
        raise RuntimeError("no backends today")

    @hookimpl
    def pharos_event_sinks(self) -> list[Any]:
        raise RuntimeError("no sinks today")


def test_storage_backends_and_event_sinks(caplog: pytest.LogCaptureFixture) -> None:
    manager = PluginManager()
    manager.register(Extensions("A"), "a")
    manager.register(FailingExtensions(), "failing")
    manager.register(Extensions("B"), "b")
    areas = manager.storage_areas()
    assert sorted(areas) == ["OwnA", "OwnB", "Shared"]
    assert areas["Shared"]({}, Path(".")) == "A"  # the first registered keeps the name
    assert [sink.name for sink in manager.event_sinks()] == ["sinkA", "sinkB"]
    assert "Storage backend 'Shared' of plugin b ignored: already offered" in caplog.text
    assert "Storage backends of plugin failing failed" in caplog.text
    assert "Event sinks of plugin failing failed" in caplog.text
    assert "it needs a `name` and `publish`" in caplog.text


def test_flush_waits_for_what_was_queued() -> None:
    manager = PluginManager()
    assert manager.flush(1)  # nothing queued ever
    heard: list[str] = []
    gate = threading.Event()

    class Slow:
        @hookimpl
        def pharos_on_job(self, event: str) -> None:
            gate.wait(10)
            heard.append(event)

    manager.register(Slow(), "slow")
    manager.notify_job("Submitted", "1", "T")
    assert not manager.flush(0.05)  # still running
    gate.set()
    assert manager.flush(10)
    assert heard == ["Submitted"]
    manager.shutdown()
