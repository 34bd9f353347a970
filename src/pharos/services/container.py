"""The services of one server, built by the context and handed to the ways in."""

from __future__ import annotations

from dataclasses import dataclass, field

from pharos.plugins.manager import PluginManager
from pharos.services.annotations import AnnotationService
from pharos.services.archive_jobs import ArchiveJobs
from pharos.services.changes import ChangeLogService
from pharos.services.deletion import DeletionService
from pharos.services.dicom_jobs import DicomJobs
from pharos.services.dicomweb_client import DicomWebClient
from pharos.services.dicomweb_client_jobs import DicomWebClientJobs
from pharos.services.dicomweb_server import DicomWebServer
from pharos.services.files import FileService
from pharos.services.find import FindService
from pharos.services.modify_jobs import ModifyJobs
from pharos.services.options import ServiceOptions
from pharos.services.peer_jobs import PeerJobs
from pharos.services.peers import PeerService
from pharos.services.remote_dicom import RemoteDicomService
from pharos.services.remote_modalities import ModalityRegistry
from pharos.services.remote_queries import QueryService
from pharos.services.resources import ResourceService
from pharos.services.scp_settings import ScpSettings
from pharos.services.split_merge import SplitMergeService
from pharos.services.storage_commitment import StorageCommitmentService
from pharos.services.store import StoreService
from pharos.services.system import SystemInfo
from pharos.services.tags import TagService
from pharos.services.thumbnails import ThumbnailService


@dataclass(frozen=True, slots=True)
class Services:
    options: ServiceOptions
    system: SystemInfo
    store: StoreService
    resources: ResourceService
    deletion: DeletionService
    files: FileService
    changes: ChangeLogService
    tags: TagService
    find: FindService
    annotations: AnnotationService
    modalities: ModalityRegistry  # DicomModalities (+ the index's), live
    remote: RemoteDicomService  # the DICOM client operations (/modalities)
    queries: QueryService  # /modalities/{id}/query and /queries
    thumbnails: ThumbnailService  # cached JPEG thumbnails (an internal attachment)
    dicom_jobs: DicomJobs  # store/move/retrieve, run now or prepared as jobs
    split_merge: SplitMergeService  # /studies/{id}/split and /merge, run now or as jobs
    dicomweb: DicomWebServer | None = None  # None: DicomWeb.Enable is false
    plugins: PluginManager = field(default_factory=PluginManager)  # hooks (pharos.plugins)
    scp: ScpSettings = field(default_factory=ScpSettings)  # what the DICOM server accepts, live
    peers: PeerService | None = None  # OrthancPeers (/peers)
    peer_jobs: PeerJobs | None = None  # /peers/{id}/store, run now or as a job
    dicomweb_client: DicomWebClient | None = None  # DicomWeb.Servers (/dicom-web/servers)
    dicomweb_client_jobs: DicomWebClientJobs | None = None  # its STOW/WADO, now or as jobs
    modify: ModifyJobs | None = None  # /modify, /anonymize, /tools/bulk-*, now or as jobs
    archives: ArchiveJobs | None = None  # /archive, /media, /tools/create-*: now or as jobs
    commitment: StorageCommitmentService | None = None  # storage commitment, SCP and SCU
