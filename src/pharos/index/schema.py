"""The index schema, the same on SQLite and PostgreSQL (SQLAlchemy Core).

`resources` is the tree (one row per patient, study, series, instance). Each level has its
own table, one row per resource, whose columns are that level's main DICOM tags (so searches
hit indexed columns, not an entity-attribute-value table) and the built-in metadata that
Orthanc keeps for that level. Studies also keep a copy of the patient tags they were
received with, as Orthanc does (`PatientMainDicomTags`), so study searches need no join.

Each main tag column `x` has a twin `x_ci` holding the value folded to upper case
(`pharos.dicom.matching.fold`): /tools/find compares it when the search is case-insensitive
(the default), through indexes on the tags searched most. The folded columns compare
byte-wise on both backends (BINARY on SQLite, COLLATE "C" on PostgreSQL), so that ranges,
prefix wildcards and results are the same everywhere. `ExtraMainDicomTags` (Orthanc 1.11) go
to `extra_tags`, one row per resource and tag (a study also holds its patient's).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    false,
)

from pharos.dicom.maintags import INSTANCE_TAGS, PATIENT_TAGS, SERIES_TAGS, STUDY_TAGS, MainTag
from pharos.model.levels import Level

SCHEMA_VERSION = 7

# SQLite only aliases the rowid (fast, auto-incrementing) for a column typed exactly INTEGER.
Key = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _resource_pk() -> Column:
    return Column(
        "pk",
        Key,
        ForeignKey("resources.pk", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )


# Byte-wise comparison on PostgreSQL too: identical ranges and LIKE prefixes use the index.
SearchText = Text().with_variant(Text(collation="C"), "postgresql")


def folded(column: str) -> str:
    """The name of the folded (upper-case) twin of a main tag column."""
    return column + "_ci"


def _tag_columns(tags: tuple[MainTag, ...]) -> list[Column]:
    columns = [Column(tag.column, Text) for tag in tags]
    return columns + [Column(folded(tag.column), SearchText) for tag in tags]


resources = Table(
    "resources",
    metadata,
    Column("pk", Key, primary_key=True, autoincrement=True),
    Column("level", SmallInteger, nullable=False),
    Column("public_id", String(44), nullable=False),
    Column("parent_pk", Key, ForeignKey("resources.pk", ondelete="CASCADE")),
    # Epoch seconds of the last instance received below this resource (Orthanc's LastUpdate).
    Column("updated_at", Float, nullable=False),
    # False until StableAge seconds pass without a new instance (Orthanc's IsStable).
    Column("stable", Boolean, nullable=False, server_default=false()),
    Column("child_count", Integer, nullable=False, server_default="0"),
    Column("is_protected", Boolean, nullable=False, server_default=false()),
    Index("ux_resources_public_id", "public_id", unique=True),
    Index("ix_resources_parent", "parent_pk"),
    Index("ix_resources_level", "level", "pk"),
)
# Partial: the stability monitor only ever looks at the (few) unstable resources.
Index(
    "ix_resources_unstable",
    resources.c.updated_at,
    sqlite_where=resources.c.stable == false(),
    postgresql_where=resources.c.stable == false(),
)

patients = Table("patients", metadata, _resource_pk(), *_tag_columns(PATIENT_TAGS))

studies = Table(
    "studies",
    metadata,
    _resource_pk(),
    *_tag_columns(STUDY_TAGS),
    *_tag_columns(PATIENT_TAGS),
)

series = Table(
    "series",
    metadata,
    _resource_pk(),
    *_tag_columns(SERIES_TAGS),
    Column("expected_instances", Integer),
    Column("remote_aet", Text),
)

instances = Table(
    "instances",
    metadata,
    _resource_pk(),
    *_tag_columns(INSTANCE_TAGS),
    Column("index_in_series", Integer),
    Column("reception_date", String(15)),
    Column("remote_aet", Text),
    Column("remote_ip", Text),
    Column("called_aet", Text),
    Column("http_username", Text),
    Column("origin", String(16)),
    Column("transfer_syntax", String(64)),
    Column("sop_class_uid", String(64)),
    Column("pixel_data_offset", BigInteger),
)

attachments = Table(
    "attachments",
    metadata,
    Column("resource_pk", Key, ForeignKey("resources.pk", ondelete="CASCADE"), nullable=False),
    Column("content_type", Integer, nullable=False),
    Column("uuid", String(36), nullable=False),
    Column("compressed_size", BigInteger, nullable=False),
    Column("uncompressed_size", BigInteger, nullable=False),
    Column("compression", SmallInteger, nullable=False),
    Column("uncompressed_md5", String(32)),
    Column("compressed_md5", String(32)),
    Column("revision", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("resource_pk", "content_type"),
    Index("ux_attachments_uuid", "uuid", unique=True),
)

resource_metadata = Table(
    "metadata",
    metadata,
    Column("resource_pk", Key, ForeignKey("resources.pk", ondelete="CASCADE"), nullable=False),
    Column("type", Integer, nullable=False),
    Column("value", Text, nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("resource_pk", "type"),
)

labels = Table(
    "labels",
    metadata,
    Column("resource_pk", Key, ForeignKey("resources.pk", ondelete="CASCADE"), nullable=False),
    Column("label", String(64), nullable=False),
    PrimaryKeyConstraint("resource_pk", "label"),
    Index("ix_labels_label", "label"),
)

# The change log outlives the resources it names: it is the outbox every event sink follows.
changes = Table(
    "changes",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("change_type", Integer, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("public_id", String(44), nullable=False),
    Column("date", String(15), nullable=False),
)

exports = Table(
    "exports",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("level", SmallInteger, nullable=False),
    Column("public_id", String(44), nullable=False),
    Column("remote_modality", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("study_instance_uid", Text, nullable=False),
    Column("series_instance_uid", Text, nullable=False),
    Column("sop_instance_uid", Text, nullable=False),
    Column("date", String(15), nullable=False),
)

properties = Table(
    "properties",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Search indexes on the identifiers and the tags most queried; issue-level tuning adds more.
Index("ix_patients_patient_id", patients.c.patient_id)
Index("ix_studies_study_instance_uid", studies.c.study_instance_uid)
Index("ix_studies_patient_id", studies.c.patient_id)
Index("ix_studies_study_date", studies.c.study_date)
Index("ix_studies_accession_number", studies.c.accession_number)
Index("ix_series_series_instance_uid", series.c.series_instance_uid)
Index("ix_series_modality", series.c.modality)
Index("ix_instances_sop_instance_uid", instances.c.sop_instance_uid)

# DicomModalitiesInDatabase (schema version 4): the modalities defined through the REST API,
# as the JSON object form of DicomModalities, shared by every process using the index.
modalities = Table(
    "modalities",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("definition", Text, nullable=False),
)

# DicomWeb.ServersInDatabase (schema version 7): the DICOMweb client's remote servers defined
# through the REST API, as the JSON object form of DicomWeb.Servers.
dicomweb_servers = Table(
    "dicomweb_servers",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("definition", Text, nullable=False),
)

# The jobs engine's saved jobs (schema version 5, SaveJobs): one row per job, its whole record
# (state, priority, times, serialized step state) as JSON text; `position` orders them. `owner`
# is the server that runs it (DatabaseServerIdentifier), for processes sharing PostgreSQL.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("position", Integer, nullable=False),
    Column("record", Text, nullable=False),
)

# OrthancPeersInDatabase (schema version 6): the Orthanc peers defined through the REST API,
# as the JSON object form of OrthancPeers, shared by every process using the index.
peers = Table(
    "peers",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("definition", Text, nullable=False),
)

extra_tags = Table(
    "extra_tags",
    metadata,
    Column("resource_pk", Key, ForeignKey("resources.pk", ondelete="CASCADE"), nullable=False),
    Column("tag", Integer, nullable=False),
    # The level the tag belongs to: a study's rows hold its own tags and its patient's.
    Column("level", SmallInteger, nullable=False),
    Column("value", Text, nullable=False),
    Column("value_ci", SearchText, nullable=False),
    PrimaryKeyConstraint("resource_pk", "tag"),
    Index("ix_extra_tags_value_ci", "tag", "value_ci"),
    Index("ix_extra_tags_value", "tag", "value"),
)

# /tools/find: the folded twins of the tags searched most, with the primary key so that an
# equality lookup comes out in creation order (ORDER BY pk LIMIT n stops early).
SEARCH_INDEXES: list[Index] = [
    Index(f"ix_{table.name}_{folded(column)}", table.c[folded(column)], table.c.pk)
    for table, column in (
        (patients, "patient_id"),
        (patients, "patient_name"),
        (studies, "patient_id"),
        (studies, "patient_name"),
        (studies, "patient_birth_date"),
        (studies, "study_date"),
        (studies, "accession_number"),
        (studies, "study_instance_uid"),
        (studies, "study_description"),
        (series, "modality"),
        (series, "series_instance_uid"),
        (instances, "sop_instance_uid"),
    )
]

LEVEL_TABLES: dict[Level, Table] = {
    Level.PATIENT: patients,
    Level.STUDY: studies,
    Level.SERIES: series,
    Level.INSTANCE: instances,
}
