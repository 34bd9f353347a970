"""Tests of pharos.config: the settings table, loading, validation, environment, printing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import json5
import pytest

from pharos.config import (
    SETTINGS,
    Config,
    ConfigError,
    Setting,
    default_config,
    load_config,
    render_default_config,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/orthanc-1.10-configuration.json"
# Defaults Pharos changes on purpose (see the help of these options).
PHAROS_DEFAULTS = {
    "StorageDirectory": "PharosStorage",
    "IndexDirectory": "PharosStorage",
    "MaximumPduLength": 131072,
}


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(*paths: str | Path, **environ: str) -> Config:
    return load_config(list(paths), environ=environ)


# --- the table --------------------------------------------------------------------------------


def test_defaults_match_orthanc_reference() -> None:
    if not REFERENCE.exists():
        pytest.skip("reference configuration absent")
    reference = json5.loads(REFERENCE.read_text(encoding="utf-8"))
    config = default_config()
    for name, value in reference.items():
        assert config[name] == PHAROS_DEFAULTS.get(name, value), name
        assert config.setting(name).kind is type(value), name


def test_commented_out_reference_options_are_known_without_default() -> None:
    config = default_config()
    for name, kind in [
        ("TemporaryDirectory", str),
        ("AuthenticationEnabled", bool),
        ("SslCiphersAccepted", list),
        ("Pkcs11", dict),
        ("H265TransferSyntaxAccepted", bool),
        ("DatabaseServerIdentifier", str),
    ]:
        assert config[name] is None
        assert config.setting(name).kind is kind
        assert config.setting(name).example is not None


def test_every_setting_documented_once() -> None:
    def walk(table: Iterable[Setting]) -> Iterator[Setting]:
        for setting in table:
            yield setting
            yield from walk(setting.children)

    for setting in walk(SETTINGS):
        assert setting.help.strip(), f"{setting.name} has no help"
        assert setting.kind in (bool, int, float, str, list, dict), setting.name
        if setting.default is not None:
            assert isinstance(setting.default, setting.kind), setting.name
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    # Environment names match with underscores removed, case-insensitively: no collisions.
    assert len({n.lower() for n in names}) == len(names)


def test_postgresql_section_defaults() -> None:
    pg = default_config().section("PostgreSQL")
    assert pg.as_dict() == {
        "EnableIndex": False,
        "EnableStorage": False,
        "Host": "localhost",
        "Port": 5432,
        "Database": "",
        "Username": "",
        "Password": "",
        "ConnectionUri": None,
        "EnableSsl": False,
        "Lock": True,
        "IndexConnectionsCount": 50,
        "MaximumConnectionRetries": 10,
        "ConnectionRetryInterval": 5,
        "EnableVerboseLogs": False,
        "TransactionMode": "ReadCommitted",
    }
    assert default_config()["PostgreSQL"] == pg.as_dict()
    assert not default_config().is_set("PostgreSQL")


# --- the Config object ------------------------------------------------------------------------


def test_accessors() -> None:
    config = default_config()
    assert config["HttpPort"] == 8042
    assert config.get_int("HttpPort") == 8042
    assert config.get_bool("RemoteAccessAllowed") is False
    assert config.get_str("DicomAet") == "ORTHANC"
    assert config.get_list("AcceptedTransferSyntaxes") == ["1.2.840.10008.1.*"]
    assert config.get_dict("DicomModalities") == {}
    assert config.source("HttpPort") == "default"
    assert not config.is_set("HttpPort")
    with pytest.raises(KeyError, match="did you mean HttpPort"):
        config["HttpPrt"]
    with pytest.raises(TypeError):
        config.get_int("DicomAet")
    with pytest.raises(TypeError, match="no default"):
        config.get_str("TemporaryDirectory")
    assert config.get_str("TemporaryDirectory", None) is None
    # Orthanc: AuthenticationEnabled defaults to RemoteAccessAllowed.
    assert config.get_bool("AuthenticationEnabled", config.get_bool("RemoteAccessAllowed")) is False
    with pytest.raises(TypeError):
        config.section("HttpPort")


def test_values_are_copies() -> None:
    config = default_config()
    config.get_list("AcceptedTransferSyntaxes").append("x")
    config.get_dict("DicomModalities")["x"] = []
    assert config["AcceptedTransferSyntaxes"] == ["1.2.840.10008.1.*"]
    assert config["DicomModalities"] == {}
    assert config.setting("AcceptedTransferSyntaxes").default == ["1.2.840.10008.1.*"]


def test_with_overrides(tmp_path: Path) -> None:
    base = load(write(tmp_path / "a.json", '{"PostgreSQL": {"Host": "db"}, "Name": "A"}'))
    config = base.with_overrides(HttpPort=0, PostgreSQL={"Port": 5433})
    assert config.get_int("HttpPort") == 0
    assert config.source("HttpPort") == "override"
    assert config.is_set("HttpPort")
    assert config["Name"] == "A"
    pg = config.section("PostgreSQL")
    assert (pg["Host"], pg["Port"]) == ("db", 5433)
    assert pg.source("Port") == "override"
    assert base.get_int("HttpPort") == 8042  # the original is unchanged
    assert base.section("PostgreSQL")["Port"] == 5432
    with pytest.raises(ConfigError, match="HttpPort"):
        base.with_overrides(HttpPort="x")
    with pytest.raises(KeyError):
        base.with_overrides(HttpPrt=1)


def test_as_dict_is_the_effective_configuration(tmp_path: Path) -> None:
    config = load(write(tmp_path / "a.json", '{"HttpPort": 8043}'))
    effective = config.as_dict()
    assert effective["HttpPort"] == 8043
    assert effective["DicomPort"] == 4242
    assert effective["TemporaryDirectory"] is None
    assert effective["PostgreSQL"] == config.get_dict("PostgreSQL")
    assert config.get_dict("PostgreSQL")["Port"] == 5432
    assert set(effective) == {s.name for s in SETTINGS}
    json.dumps(effective)  # serializable as is


# --- files ------------------------------------------------------------------------------------


def test_comments_and_trailing_commas(tmp_path: Path) -> None:
    path = write(
        tmp_path / "orthanc.json",
        """{
          // a comment
          "Name" : "Test", /* another */
          "HttpPort" : 8043,
          "DicomModalities" : { "pacs" : [ "PACS", "10.0.0.1", 104 ], },
        }""",
    )
    config = load(path)
    assert config["Name"] == "Test"
    assert config["HttpPort"] == 8043
    assert config["DicomModalities"] == {"pacs": ["PACS", "10.0.0.1", 104]}
    assert config.source("HttpPort") == path
    assert config.is_set("Name")
    assert config.files == (path,)
    assert config.warnings == []


def test_directory_of_files_is_merged_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.json", '{"HttpPort": 8043}')
    write(tmp_path / "a.JSON", '{"Name": "A"}')
    write(tmp_path / "c.txt", "not json at all")
    (tmp_path / "sub.json").mkdir()
    write(tmp_path / "sub.json" / "d.json", '{"DicomPort": 1}')
    config = load(tmp_path)
    assert config["HttpPort"] == 8043
    assert config["Name"] == "A"
    assert config["DicomPort"] == 4242  # not recursive
    assert [Path(f).name for f in config.files] == ["a.JSON", "b.json"]
    assert config.source("Name") == str(tmp_path / "a.JSON")


def test_duplicate_option_across_files_is_an_error(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", '{"HttpPort": 8043}')
    b = write(tmp_path / "b.json", '{"HttpPort": 8044}')
    with pytest.raises(ConfigError, match='"HttpPort" is defined in 2 different') as info:
        load(a, b)
    assert a in str(info.value) and b in str(info.value)


def test_sections_are_not_merged_across_files(tmp_path: Path) -> None:
    # Orthanc only compares top-level keys: two "PostgreSQL" sections clash, whatever inside.
    write(tmp_path / "a.json", '{"PostgreSQL": {"Host": "db"}}')
    write(tmp_path / "b.json", '{"PostgreSQL": {"Port": 5433}}')
    with pytest.raises(ConfigError, match='"PostgreSQL" is defined in 2 different'):
        load(tmp_path)


def test_unknown_options_are_also_checked_for_duplicates(tmp_path: Path) -> None:
    write(tmp_path / "a.json", '{"Transfers": {}}')
    write(tmp_path / "b.json", '{"Transfers": {"Threads": 4}}')
    with pytest.raises(ConfigError, match="Transfers"):
        load(tmp_path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.json", '{\n  "HttpPort": 8043\n  "Name": "x"\n}')
    with pytest.raises(ConfigError, match=r"broken\.json") as info:
        load(path)
    assert "line 3" in str(info.value)


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must contain a JSON object"):
        load(write(tmp_path / "list.json", "[1, 2]"))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Inexistent path"):
        load(tmp_path / "nope.json")
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"Name": "\xe9"}')
    with pytest.raises(ConfigError, match="Cannot read"):
        load(bad)


def test_environment_variables_are_substituted_in_files(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.json",
        '{"Name": "${NAME}", "DicomAet": "${AET:-PHAROS}", "HttpProxy": "${UNSET}"}',
    )
    config = load(path, NAME="FromEnv")
    assert config["Name"] == "FromEnv"
    assert config["DicomAet"] == "PHAROS"
    assert config["HttpProxy"] == ""
    assert any("UNSET" in w and "not set" in w for w in config.warnings)


def test_duplicate_key_in_one_file_warns(tmp_path: Path) -> None:
    config = load(write(tmp_path / "a.json", '{"HttpPort": 1, "HttpPort": 2}'))
    assert config["HttpPort"] == 2
    assert any('"HttpPort" appears twice' in w for w in config.warnings)


# --- validation -------------------------------------------------------------------------------


def test_ill_typed_value_names_option_source_and_type(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"HttpPort": "8043"}')
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert '"HttpPort"' in message
    assert path in message
    assert "an integer" in message
    assert '"8043"' in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HttpPort", True),
        ("HttpPort", 80.5),
        ("RemoteAccessAllowed", 1),
        ("Name", None),
        ("LuaScripts", "a.lua"),
        ("DicomModalities", []),
        ("PostgreSQL", "host=db"),
    ],
)
def test_rejected_values(tmp_path: Path, name: str, value: object) -> None:
    path = write(tmp_path / "a.json", json.dumps({name: value}))
    with pytest.raises(ConfigError, match=name):
        load(path)


def test_accepted_values(tmp_path: Path) -> None:
    text = '{"HttpPort": 8043.0, "TemporaryDirectory": null, "AuthenticationEnabled": true}'
    config = load(write(tmp_path / "a.json", text))
    assert config["HttpPort"] == 8043 and isinstance(config["HttpPort"], int)
    assert config["TemporaryDirectory"] is None and config.is_set("TemporaryDirectory")
    assert config.get_bool("AuthenticationEnabled") is True


def test_ill_typed_postgresql_value(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"PostgreSQL": {"Port": "5432"}}')
    with pytest.raises(ConfigError, match=r'"PostgreSQL\.Port".*an integer'):
        load(path)


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"HttpPort": "x", "DicomPort": "y"}')
    with pytest.raises(ConfigError, match="2 errors") as info:
        load(path)
    assert "HttpPort" in str(info.value) and "DicomPort" in str(info.value)


def test_passwords_stay_out_of_error_messages(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"PostgreSQL": {"Password": 123456789}}')
    with pytest.raises(ConfigError, match="Password") as info:
        load(path)
    assert "123456789" not in str(info.value)


def test_unknown_option_warns_with_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"HttpPrt": 8043, "Zzzzz": 1}')
    config = load(path)
    assert config["HttpPort"] == 8042
    assert len(config.warnings) == 2
    assert "HttpPrt" in config.warnings[0]
    assert path in config.warnings[0]
    assert "did you mean HttpPort" in config.warnings[0]
    assert "Zzzzz" in config.warnings[1] and "did you mean" not in config.warnings[1]


def test_unknown_postgresql_key_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.json",
        '{"PostgreSQL": {"Hots": "db", "HousekeepingInterval": 1, "EnableIndex": true}}',
    )
    config = load(path)
    assert config.section("PostgreSQL")["EnableIndex"] is True
    assert any(
        "PostgreSQL.Hots" in w and "did you mean PostgreSQL.Host" in w for w in config.warnings
    )
    assert any(
        "HousekeepingInterval" in w and "not supported by Pharos yet" in w for w in config.warnings
    )


def test_known_plugin_sections_are_reported_as_unsupported(tmp_path: Path) -> None:
    config = load(write(tmp_path / "a.json", '{"Transfers": {"Threads": 4}, "Gdcm": {}}'))
    assert len(config.warnings) == 2
    assert all("not supported by Pharos yet (ignored)" in w for w in config.warnings)


# --- environment ------------------------------------------------------------------------------


def test_environment_overrides_both_prefixes() -> None:
    config = load(ORTHANC__HTTP_PORT="8043", PHAROS__DICOM_AET="PHAROS")
    assert config["HttpPort"] == 8043
    assert config.source("HttpPort") == "ORTHANC__HTTP_PORT"
    assert config["DicomAet"] == "PHAROS"
    assert config.source("DicomAet") == "PHAROS__DICOM_AET"


def test_pharos_prefix_wins_over_orthanc() -> None:
    config = load(ORTHANC__HTTP_PORT="8043", PHAROS__HTTP_PORT="8044")
    assert config["HttpPort"] == 8044
    assert config.source("HttpPort") == "PHAROS__HTTP_PORT"


def test_environment_wins_over_files(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"HttpPort": 8043, "Name": "File"}')
    config = load(path, ORTHANC__HTTP_PORT="8044")
    assert config["HttpPort"] == 8044
    assert config["Name"] == "File"
    assert config.source("Name") == path


def test_environment_json_values_and_strings() -> None:
    config = load(
        ORTHANC__REMOTE_ACCESS_ALLOWED="true",
        ORTHANC__STORAGE_COMPRESSION="True",
        ORTHANC__LUA_SCRIPTS='["a.lua", "b.lua"]',
        ORTHANC__REGISTERED_USERS='{"alice": "secret"}',
        ORTHANC__NAME="123",
        ORTHANC__STORAGE_DIRECTORY="/var/lib/pharos",
        ORTHANC__DICOM_AET='"QUOTED"',
        ORTHANC__TEMPORARY_DIRECTORY="null",
    )
    assert config["RemoteAccessAllowed"] is True
    assert config["StorageCompression"] is True
    assert config["LuaScripts"] == ["a.lua", "b.lua"]
    assert config["RegisteredUsers"] == {"alice": "secret"}
    assert config["Name"] == "123"
    assert config["StorageDirectory"] == "/var/lib/pharos"
    assert config["DicomAet"] == "QUOTED"
    assert config["TemporaryDirectory"] is None
    assert config.warnings == []


def test_environment_names_ignore_case_and_underscores() -> None:
    config = load(ORTHANC__DICOMAET="A", ORTHANC__MAXIMUM_PDU_LENGTH="4096")
    assert config["DicomAet"] == "A"
    assert config["MaximumPduLength"] == 4096
    assert load(ORTHANC__STORE_MD5_FOR_ATTACHMENTS="false")["StoreMD5ForAttachments"] is False


def test_environment_postgresql(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"PostgreSQL": {"Host": "file", "Port": 5433}}')
    config = load(
        path,
        ORTHANC__POSTGRESQL__HOST="db",
        ORTHANC__POSTGRESQL__ENABLE_INDEX="true",
        PHAROS__POSTGRESQL__INDEX_CONNECTIONS_COUNT="5",
    )
    pg = config.section("PostgreSQL")
    assert pg["Host"] == "db"
    assert pg["Port"] == 5433
    assert pg["EnableIndex"] is True
    assert pg["IndexConnectionsCount"] == 5
    assert pg.source("Host") == "ORTHANC__POSTGRESQL__HOST"
    assert pg.source("Port") == path
    assert pg.source("Lock") == "default"
    assert config.is_set("PostgreSQL")


def test_environment_whole_section_then_sub_option() -> None:
    config = load(
        ORTHANC__POSTGRESQL='{"Host": "a", "Port": 1}',
        ORTHANC__POSTGRESQL__PORT="2",
    )
    assert config.section("PostgreSQL")["Host"] == "a"
    assert config.section("PostgreSQL")["Port"] == 2


def test_ill_typed_environment_value() -> None:
    with pytest.raises(ConfigError) as info:
        load(ORTHANC__HTTP_PORT="eighty")
    message = str(info.value)
    assert "HttpPort" in message
    assert "ORTHANC__HTTP_PORT" in message
    assert "an integer" in message
    assert '"eighty"' in message
    with pytest.raises(ConfigError, match="ORTHANC__POSTGRESQL__PORT"):
        load(ORTHANC__POSTGRESQL__PORT="x")


def test_unknown_environment_variables_warn() -> None:
    config = load(
        ORTHANC__HTTP_PRT="1",
        ORTHANC__POSTGRESQL__HOTS="db",
        ORTHANC__TRANSFERS__THREADS="4",
        ORTHANC__DICOM_MODALITIES__PACS='["PACS", "h", 104]',
        ORTHANC_JSON="{}",  # not our convention: left alone
        PATH="/usr/bin",
    )
    warnings = "\n".join(config.warnings)
    assert len(config.warnings) == 4
    assert "ORTHANC__HTTP_PRT" in warnings and "did you mean HttpPort" in warnings
    assert "did you mean PostgreSQL.Host" in warnings
    assert "Transfers" in warnings and "not supported by Pharos yet" in warnings
    assert "free-form" in warnings


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHAROS__HTTP_PORT", "9999")
    assert load_config([])["HttpPort"] == 9999
    assert os.environ["PHAROS__HTTP_PORT"] == "9999"


# --- printing ---------------------------------------------------------------------------------


def test_render_default_config_round_trips(tmp_path: Path) -> None:
    text = render_default_config()
    path = write(tmp_path / "default.json", text)
    config = load(path)
    assert config.warnings == []
    assert config == default_config()
    assert config.as_dict() == default_config().as_dict()
    assert config.is_set("HttpPort") and not config.is_set("TemporaryDirectory")


def test_render_default_config_layout() -> None:
    text = render_default_config()
    assert '// "TemporaryDirectory" : "/tmp/Orthanc/",' in text
    assert '  "HttpPort" : 8042,' in text
    assert '    // "ConnectionUri" : ' in text
    for line in text.splitlines():
        assert len(line) <= 95 or "http" in line, line
    assert text.count("// HTTP port for the REST services") == 1
