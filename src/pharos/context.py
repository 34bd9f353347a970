"""The server context: builds the index, storage and services from the configuration, and owns
their start-up and shutdown. The only module that picks concrete backends.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from pharos.config import Config
from pharos.dicom.charset import canonical_encoding
from pharos.dicom.extra_tags import parse_extra_main_tags
from pharos.dicom.transcode import TranscodingError, check_target
from pharos.dimse import create_dicom_server
from pharos.dimse.scu import ScuClient
from pharos.dimse.tls import DicomTls, DicomTlsOptions
from pharos.events import EventFollower, PluginListenersSink
from pharos.http.app import HttpOptions, create_app
from pharos.http.in_process import InProcessCaller
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins.loader import load_configured, load_entry_points
from pharos.plugins.lua import LuaPlugin
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import PluginContext, RestCaller
from pharos.services.annotations import AnnotationService
from pharos.services.archive import ArchiveService
from pharos.services.archive_jobs import ArchiveJobs, ArchiveOutputs, archive_directory
from pharos.services.changes import ChangeLogService
from pharos.services.container import Services
from pharos.services.deletion import DeletionService
from pharos.services.dicom_jobs import DicomJobs
from pharos.services.dicom_retrieve import RetrieveService
from pharos.services.dicomweb_client import DicomWebClient, StowLimits
from pharos.services.dicomweb_client_jobs import DicomWebClientJobs
from pharos.services.dicomweb_frames import DicomWebFrames
from pharos.services.dicomweb_metadata import indexed_metadata
from pharos.services.dicomweb_retrieve import DicomWebRetrieve
from pharos.services.dicomweb_search import DicomWebSearch
from pharos.services.dicomweb_server import (
    DicomWebServer,
    cors_policy,
    normalize_host,
    normalize_root,
)
from pharos.services.dicomweb_store import DicomWebStore
from pharos.services.files import FileService
from pharos.services.find import FindService
from pharos.services.images import ImageService
from pharos.services.maintenance import StabilityMonitor, remove_orphan_files
from pharos.services.modalities import parse_modalities
from pharos.services.modify import ModifyService
from pharos.services.modify_jobs import ModifyJobs
from pharos.services.options import ServiceOptions
from pharos.services.peer_jobs import PeerJobs
from pharos.services.peers import PeerService
from pharos.services.remote_dicom import RemoteDicomService, ScuSettings
from pharos.services.remote_modalities import ModalityRegistry
from pharos.services.remote_queries import QueryArchive, QueryService
from pharos.services.resources import ResourceService
from pharos.services.split_merge import SplitMergeService
from pharos.services.storage_commitment import StorageCommitmentService
from pharos.services.store import StoreService
from pharos.services.system import SystemInfo
from pharos.services.tags import TagService
from pharos.services.thumbnails import ThumbnailService
from pharos.services.web_services import (
    HttpClientFactory,
    HttpSettings,
    WebServiceRegistry,
    WebServiceStore,
    parse_configured,
)
from pharos.storage.base import StorageArea
from pharos.storage.filesystem import FileSystemStorage

log = logging.getLogger(__name__)

# Another process sharing PostgreSQL may have written a file whose index commit is a moment
# away; files younger than this are never treated as orphans in that mode.
SHARED_INDEX_ORPHAN_GRACE = 600.0


class ServerContext:
    def __init__(self, config: Config, base_dir: Path | None = None):
        self.config = config
        self.started_at = time.time()
        base = (base_dir or Path.cwd()).resolve()
        storage_dir = base / config.get_str("StorageDirectory")
        index_dir = base / str(config["IndexDirectory"] or config["StorageDirectory"])

        postgres = config.section("PostgreSQL")
        self.shared_index = postgres.get_bool("EnableIndex")
        if postgres.get_bool("EnableStorage"):
            log.warning(
                "PostgreSQL.EnableStorage is not supported by Pharos: files are kept in %s",
                storage_dir,
            )
        self.index: SqlIndex
        if self.shared_index:
            pool = max(2, min(postgres.get_int("IndexConnectionsCount"), 32))
            self.index = open_postgres_index(postgres_url(postgres.as_dict()), pool)
        else:
            self.index = open_sqlite_index(index_dir)
        # Plugins first: they may offer the storage backend, and the services call their hooks.
        self.plugins = PluginManager()
        self.lua = lua_plugin(config, base)
        if self.lua is not None:  # first: "lua" is its name
            self.lua.attach(self.plugins)
        load_entry_points(self.plugins)
        load_configured(self.plugins, config.get_list("Plugins"), _plugins_base(config, base))
        self.storage = storage_area(config, storage_dir, self.plugins)

        extra_main_tags, extra_warnings = parse_extra_main_tags(
            config.get_dict("ExtraMainDicomTags")
        )
        for warning in extra_warnings:
            log.warning("configuration: %s", warning)
        options = ServiceOptions(
            overwrite_instances=config.get_bool("OverwriteInstances"),
            storage_compression=config.get_bool("StorageCompression"),
            store_md5=config.get_bool("StoreMD5ForAttachments"),
            default_encoding=canonical_encoding(config.get_str("DefaultEncoding")),
            stable_age=float(config.get_int("StableAge")),
            case_sensitive_pn=config.get_bool("CaseSensitivePN"),
            storage_access_on_find=config.get_str("StorageAccessOnFind"),
            limit_find_results=config.get_int("LimitFindResults"),
            limit_find_instances=config.get_int("LimitFindInstances"),
            extra_main_tags=extra_main_tags,
            user_metadata=config.get_dict("UserMetadata"),
            user_content_types=config.get_dict("UserContentType"),
            check_revisions=config.get_bool("CheckRevisions"),
            ingest_transcoding=ingest_transcoding_option(config.get_str("IngestTranscoding", "")),
            ingest_transcoding_of_uncompressed=config.get_bool("IngestTranscodingOfUncompressed"),
            ingest_transcoding_of_compressed=config.get_bool("IngestTranscodingOfCompressed"),
            lossy_quality=lossy_quality_option(config.get_int("DicomLossyTranscodingQuality")),
        )
        remote_access = config.get_bool("RemoteAccessAllowed")
        authentication = config.get_bool("AuthenticationEnabled", remote_access)
        self.system = SystemInfo(
            name=config.get_str("Name"),
            dicom_aet=config.get_str("DicomAet"),
            dicom_port=config.get_int("DicomPort"),
            http_port=config.get_int("HttpPort"),
            remote_access_allowed=remote_access,
            authentication_enabled=authentication,
            check_revisions=config.get_bool("CheckRevisions"),
            storage_compression=options.storage_compression,
            overwrite_instances=options.overwrite_instances,
            database_backend="PostgreSQL" if self.shared_index else None,
            index_description=self.index.describe(),
            storage_description=self.storage.describe(),
            storage_backend=_plugin_storage_name(config),
        )
        self.storage_dir = storage_dir
        files = FileService(self.index, self.storage)
        store = StoreService(self.index, self.storage, options, self.plugins)
        declared, modality_warnings = parse_modalities(config.get_dict("DicomModalities"))
        for warning in modality_warnings:
            log.warning("configuration: %s", warning)
        registry = ModalityRegistry(
            declared,
            strict_aet=config.get_bool("StrictAetComparison"),
            index=self.index if config.get_bool("DicomModalitiesInDatabase") else None,
        )
        # Read once, for the server and the client: a bad file stops the start-up.
        dicom_tls = DicomTls.load(DicomTlsOptions.from_config(config, base))
        if dicom_tls.client is None:
            for modality in declared:
                if modality.use_dicom_tls:
                    log.warning(
                        'configuration: modality "%s" has UseDicomTls but DicomTlsCertificate, '
                        "DicomTlsPrivateKey and DicomTlsTrustedCertificates are not set: "
                        "associations with it will fail",
                        modality.name,
                    )
        self.scu = ScuClient(
            maximum_pdu_length=config.get_int("MaximumPduLength"),
            close_delay=float(config.get_int("DicomAssociationCloseDelay")),
            tls=dicom_tls,
        )
        retrieve = RetrieveService(self.index, files)
        deletion = DeletionService(self.index, self.storage)
        commitment = StorageCommitmentService(
            registry,
            self.scu,
            self.index,
            retrieve,
            deletion,
            dicom_aet=config.get_str("DicomAet"),
            scu_timeout=config.get_int("DicomScuTimeout"),
            reports_size=config.get_int("StorageCommitmentReportsSize"),
        )
        remote = RemoteDicomService(
            registry,
            self.scu,
            self.index,
            retrieve,
            store,
            options,
            ScuSettings(
                dicom_aet=config.get_str("DicomAet"),
                scu_timeout=config.get_int("DicomScuTimeout"),
                echo_checks_find=config.get_bool("DicomEchoChecksFind"),
                log_exported_resources=config.get_bool("LogExportedResources"),
            ),
            self.plugins,
            commitment,
        )
        find = FindService(self.index, files, options, store)
        thumbnails = ThumbnailService(
            self.index, self.storage, ResourceService(self.index), files, options.store_md5
        )
        queries = QueryService(remote, QueryArchive(config.get_int("QueryRetrieveSize")))
        dicom_jobs = DicomJobs(remote, queries)
        clients = HttpClientFactory(http_settings(config))
        peers = PeerService(
            peer_registry(config, self.index), clients, self.index, files, options.lossy_quality
        )
        peer_jobs = PeerJobs(peers)
        dicomweb_client = DicomWebClient(
            dicomweb_server_registry(config, self.index),
            clients,
            self.index,
            files,
            store,
            stow_limits(config),
        )
        dicomweb_client_jobs = DicomWebClientJobs(dicomweb_client)
        split_merge = SplitMergeService(self.index, files, store, deletion)
        modify = ModifyJobs(ModifyService(self.index, store, files, deletion, options))
        temporary = config.get_str("TemporaryDirectory", None)
        archives = ArchiveJobs(
            ArchiveService(self.index, self.storage, files, options),
            ArchiveOutputs(
                archive_directory(
                    str(base / temporary) if temporary else None,
                    storage_dir,
                    server_identifier(config),
                ),
                config.get_int("MediaArchiveSize"),
            ),
        )
        self.jobs = JobsEngine(
            {
                **archives.factories(),
                **dicom_jobs.factories(),
                **split_merge.factories(),
                **modify.factories(),
                **peer_jobs.factories(),
                **dicomweb_client_jobs.factories(),
            },
            threads=config.get_int("ConcurrentJobs"),
            history_size=config.get_int("JobsHistorySize"),
            store=self.index if config.get_bool("SaveJobs") else None,
            owner=server_identifier(config),
            listener=self.plugins.notify_job,
        )
        self.services = Services(
            options=options,
            system=self.system,
            store=store,
            resources=ResourceService(self.index),
            deletion=deletion,
            files=files,
            changes=ChangeLogService(self.index),
            tags=TagService(self.index, files, options),
            find=find,
            annotations=AnnotationService(self.index, self.storage, files, options),
            modalities=registry,
            remote=remote,
            queries=queries,
            thumbnails=thumbnails,
            dicomweb=self._dicomweb(config, find, files, store, options, thumbnails, deletion),
            dicom_jobs=dicom_jobs,
            split_merge=split_merge,
            modify=modify,
            archives=archives,
            peers=peers,
            peer_jobs=peer_jobs,
            dicomweb_client=dicomweb_client,
            dicomweb_client_jobs=dicomweb_client_jobs,
            plugins=self.plugins,
            commitment=commitment,
        )
        users = {str(k): str(v) for k, v in config.get_dict("RegisteredUsers").items()}
        if authentication and not users:
            log.warning(
                "AuthenticationEnabled is true but RegisteredUsers is empty: "
                "every HTTP request will be refused"
            )
        self.http_options = HttpOptions(
            remote_access_allowed=remote_access,
            authentication_enabled=authentication,
            users=users,
            compression=config.get_bool("HttpCompressionEnabled"),
            describe_errors=config.get_bool("HttpDescribeErrors"),
            threads=max(4, config.get_int("HttpThreadsCount")),
        )
        self.stability = StabilityMonitor(self.index, options.stable_age)
        sinks = self.plugins.event_sinks()
        if PluginListenersSink.wanted(self.plugins):
            sinks.insert(0, PluginListenersSink(self.index, self.plugins))
        self.events = EventFollower(self.index, sinks)
        self.dicom = create_dicom_server(config, self.services, self.index, dicom_tls)
        self._cleanup: threading.Thread | None = None
        # Set by whoever runs the server (`pharos serve`): POST /tools/reset and /shutdown.
        self.exit_handler: Callable[[bool], None] | None = None
        # Pharos's REST API in-process, for plugins (set by create_app).
        self.rest: RestCaller | None = None

    def _dicomweb(
        self,
        config: Config,
        find: FindService,
        files: FileService,
        store: StoreService,
        options: ServiceOptions,
        thumbnails: ThumbnailService,
        deletion: DeletionService,
    ) -> DicomWebServer | None:
        section = config.section("DicomWeb")
        if not section.get_bool("Enable"):
            return None
        return DicomWebServer(
            root=normalize_root(section.get_str("Root")),
            search=DicomWebSearch(
                self.index, find, files, options, section.get_bool("QidoCaseSensitive")
            ),
            retrieve=DicomWebRetrieve(
                self.index,
                self.storage,
                files,
                options.store_md5,
                indexed_metadata(
                    self.index,
                    files,
                    section.get_str("StudiesMetadata"),
                    section.get_str("SeriesMetadata"),
                    section.get_list("StudiesMetadataExtrapolatedTags"),
                    section.get_list("SeriesMetadataExtrapolatedTags"),
                ),
            ),
            store=DicomWebStore(store),
            thumbnails=thumbnails,
            images=ImageService(ResourceService(self.index), files),
            frames=DicomWebFrames(files),
            deletion=deletion,
            wado_root=(
                normalize_root(section.get_str("WadoRoot"), "WadoRoot", "/wado")
                if section.get_bool("EnableWado")
                else None
            ),
            cors=cors_policy(
                section.get_list("CorsAllowedOrigins"), section.get_bool("CorsAllowCredentials")
            ),
            public_host=normalize_host(section.get_str("Host")),
            ssl=section.get_bool("Ssl"),
            public_root=(
                normalize_root(section.get_str("PublicRoot"), "PublicRoot")
                if section.get_str("PublicRoot")
                else None
            ),
        )

    def create_app(self) -> ASGIApp:
        in_process = InProcessCaller()
        self.rest = in_process
        return create_app(
            self.services,
            self.http_options,
            self.start,
            self.stop,
            jobs=self.jobs,
            request_exit=self._request_exit,
            in_process=in_process,
            lua=self.lua,
            execute_lua_enabled=self.config.get_bool("ExecuteLuaEnabled"),
        )

    def _request_exit(self, restart: bool) -> None:
        if self.exit_handler is None:
            raise PharosError(ErrorCode.NOT_IMPLEMENTED, "This server is not run by `pharos serve`")
        self.exit_handler(restart)

    def start(self) -> None:
        self.dicom.start()  # first: a DICOM port in use stops the start-up
        self.stability.start()
        self.jobs.start()
        self.events.start()
        if self.rest is not None:
            config = self.config.as_dict()
            self.plugins.startup(PluginContext(config, self.rest, self.storage_dir))
        grace = SHARED_INDEX_ORPHAN_GRACE if self.shared_index else 0.0
        self._cleanup = threading.Thread(
            target=self._clean_orphans,
            args=(self.started_at - grace,),
            daemon=True,
            name="pharos-orphans",
        )
        self._cleanup.start()

    def stop(self) -> None:
        self.dicom.stop()
        self.events.stop()  # before the plugins: the listeners' sink waits for them
        self.plugins.shutdown()  # the listeners' queue drained first (bounded)
        self.jobs.stop()  # running jobs stop after their step, saved pending (before the SCU)
        if self.services.commitment is not None:
            self.services.commitment.close()  # reports still being sent (before the SCU)
        self.scu.close()
        self.stability.stop()
        self.services.store.close()
        if self._cleanup is not None:
            self._cleanup.join(timeout=30)
        self.index.close()

    def _clean_orphans(self, older_than: float) -> None:
        try:
            remove_orphan_files(self.index, self.storage, older_than)
        except Exception:
            log.exception("Orphan clean-up failed")


def server_identifier(config: Config) -> str:
    """DatabaseServerIdentifier, else (as Orthanc) a SHA-1 of the MAC address, the AE title and
    the ports: processes sharing an index each keep their own jobs."""
    given = config["DatabaseServerIdentifier"]
    if given:
        return str(given)
    parts = [uuid.getnode(), config.get_str("DicomAet"), config.get_int("DicomPort")]
    parts.append(config.get_int("HttpPort"))
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def http_settings(config: Config) -> HttpSettings:
    """The options of the HTTP client (Orthanc peers, DICOMweb servers)."""
    return HttpSettings(
        timeout=config.get_int("HttpTimeout"),
        verify_peers=config.get_bool("HttpsVerifyPeers"),
        ca_certificates=config.get_str("HttpsCACertificates"),
        proxy=config.get_str("HttpProxy"),
    )


def peer_registry(config: Config, index: SqlIndex) -> WebServiceRegistry:
    """OrthancPeers; with OrthancPeersInDatabase, the index's peers instead (as Orthanc)."""
    return _registry(
        "Orthanc peer",
        ("OrthancPeers", config.get_dict("OrthancPeers")),
        ("OrthancPeersInDatabase", config.get_bool("OrthancPeersInDatabase")),
        index.stored_peers,
    )


def dicomweb_server_registry(config: Config, index: SqlIndex) -> WebServiceRegistry:
    """DicomWeb.Servers; with DicomWeb.ServersInDatabase, the index's instead (as Orthanc)."""
    section = config.section("DicomWeb")
    return _registry(
        "DICOMweb server",
        ("DicomWeb.Servers", section.get_dict("Servers")),
        ("DicomWeb.ServersInDatabase", section.get_bool("ServersInDatabase")),
        index.stored_dicomweb_servers,
    )


def _registry(
    kind: str,
    configured: tuple[str, dict[str, Any]],
    in_database: tuple[str, bool],
    store: WebServiceStore,
) -> WebServiceRegistry:
    """The configured services, or with the `in_database` option those of `store` only."""
    services = parse_configured(*configured)
    if in_database[1]:
        if services:
            log.warning("%s is ignored: %s is true", configured[0], in_database[0])
        return WebServiceRegistry(kind, {}, store)
    return WebServiceRegistry(kind, services)


def stow_limits(config: Config) -> StowLimits:
    """DicomWeb.StowMaxInstances and StowMaxSize (MB): the size of each STOW-RS request the
    client sends (0: no limit)."""
    section = config.section("DicomWeb")
    instances = section.get_int("StowMaxInstances")
    megabytes = section.get_int("StowMaxSize")
    for name, value in (("StowMaxInstances", instances), ("StowMaxSize", megabytes)):
        if value < 0:
            raise ValueError(f"DicomWeb.{name} must be 0 (no limit) or more, not {value}")
    return StowLimits(instances, megabytes * 1024 * 1024)


def ingest_transcoding_option(value: str) -> str:
    """IngestTranscoding: "" (off) or a transfer syntax Pharos can encode, else ValueError."""
    if not value.strip():
        return ""
    try:
        return str(check_target(value))
    except TranscodingError as exc:
        raise ValueError(f"IngestTranscoding: {exc}") from None


def lossy_quality_option(value: int) -> int:
    if not 1 <= value <= 100:
        raise ValueError(f"DicomLossyTranscodingQuality must be between 1 and 100, not {value}")
    return value


BUILTIN_STORAGE = "FileSystem"
_STORAGE_METHODS = (
    "create",
    "read",
    "read_range",
    "remove",
    "exists",
    "scan",
    "remove_temporary_files",
    "describe",
)


def storage_area(config: Config, storage_dir: Path, plugins: PluginManager) -> StorageArea:
    """The storage backend named by StorageBackend: the built-in folder, or one a plugin
    offers (`pharos_storage_areas`). An unknown name or an unusable backend stops the
    start-up (ValueError), never falls back to another place for the files."""
    name = config.get_str("StorageBackend")
    if name == BUILTIN_STORAGE:
        return FileSystemStorage(
            storage_dir,
            fsync=config.get_bool("SyncStorageArea"),
            drop_from_cache=not config.get_bool("KeepStoredFilesInPageCache"),
        )
    offered = plugins.storage_areas()
    factory = offered.get(name)
    if factory is None:
        known = ", ".join([BUILTIN_STORAGE, *sorted(offered)])
        raise ValueError(f"StorageBackend {name!r} is unknown (known: {known})")
    try:
        area = factory(config.as_dict(), storage_dir)
    except Exception as exc:
        raise ValueError(f"StorageBackend {name!r} cannot start: {exc}") from exc
    missing = [m for m in _STORAGE_METHODS if not callable(getattr(area, m, None))]
    if missing:
        raise ValueError(f"StorageBackend {name!r} lacks {', '.join(missing)}")
    log.warning("Storage backend %s: %s", name, area.describe())  # type: ignore[attr-defined]
    return area  # type: ignore[return-value]


def _plugin_storage_name(config: Config) -> str | None:
    name = config.get_str("StorageBackend")
    return None if name == BUILTIN_STORAGE else name


def lua_plugin(config: Config, base: Path) -> LuaPlugin | None:
    """The Lua engine when there is a script to run or /tools/execute-script is enabled.
    LuaScripts paths are relative to the folder of the configuration file listing them, as in
    Orthanc; a script that cannot be read or fails stops the start-up (ValueError)."""
    paths = [str(p) for p in config.get_list("LuaScripts")]
    if not paths and not config.get_bool("ExecuteLuaEnabled"):
        return None
    source = Path(config.source("LuaScripts"))
    folder = source.parent.resolve() if source.is_file() else base
    scripts = [folder / path for path in paths]
    return LuaPlugin(config.as_dict(), scripts, config.get_bool("ExecuteLuaEnabled"))


def _plugins_base(config: Config, base: Path) -> Path:
    """Relative paths of `Plugins` start at the folder of the configuration file that lists
    them, as in Orthanc; else at the working folder."""
    source = Path(config.source("Plugins"))
    return source.parent.resolve() if source.is_file() else base
