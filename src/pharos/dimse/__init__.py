"""DICOM networking on pynetdicom: the server (SCP) of C-ECHO, C-STORE, C-FIND, C-MOVE and
C-GET (and of worklist C-FIND when `Worklists` is enabled) and of storage commitment, calling
the same services as the REST API."""

from __future__ import annotations

import logging

from pharos.config import Config
from pharos.dimse.commitment import CommitmentHandlers
from pharos.dimse.handlers import ScpHandlers
from pharos.dimse.options import DicomServerOptions
from pharos.dimse.server import DicomServer
from pharos.dimse.tls import DicomTls
from pharos.index.base import Index
from pharos.services.container import Services
from pharos.services.dicom_access import AccessRules, DicomAccess
from pharos.services.dicom_query import DicomQueryService
from pharos.services.dicom_retrieve import RetrieveService
from pharos.services.modalities import DicomRequest
from pharos.services.worklists import WorklistOptions, WorklistService

__all__ = ["DicomServer", "DicomServerOptions", "create_dicom_server"]

log = logging.getLogger(__name__)

_ALWAYS_ALLOW = {
    "DicomAlwaysAllowEcho": DicomRequest.ECHO,
    "DicomAlwaysAllowStore": DicomRequest.STORE,
    "DicomAlwaysAllowFind": DicomRequest.FIND,
    "DicomAlwaysAllowFindWorklist": DicomRequest.FIND_WORKLIST,
    "DicomAlwaysAllowMove": DicomRequest.MOVE,
    "DicomAlwaysAllowGet": DicomRequest.GET,
}
_RISKY = ("DicomAlwaysAllowFind", "DicomAlwaysAllowMove", "DicomAlwaysAllowGet")


def create_dicom_server(
    config: Config, services: Services, index: Index, tls: DicomTls
) -> DicomServer:
    """The DICOM server of a configuration (not started), with the DICOM TLS contexts read
    from it (`DicomTls.load`). Raises ValueError for settings that cannot be used."""
    if config.get_bool("DicomTlsEnabled") and tls.server is None:
        raise ValueError("DicomTlsEnabled is true but no DICOM TLS server context was given")
    options = DicomServerOptions.from_config(config)
    always = frozenset(request for name, request in _ALWAYS_ALLOW.items() if config.get_bool(name))
    if options.enabled:
        for name in _RISKY:
            if config.get_bool(name):
                log.warning(
                    "Security risk in the DICOM server: %s is on, so unknown modalities may use it",
                    name,
                )
    access = DicomAccess(
        AccessRules(
            aet=options.aet,
            check_called_aet=config.get_bool("DicomCheckCalledAet"),
            check_modality_host=config.get_bool("DicomCheckModalityHost"),
            always_allowed=always,
        ),
        services.modalities,  # live: REST changes apply to the next association
    )
    query = DicomQueryService(
        index, services.files, services.find, services.options, options.aet, services.plugins
    )
    worklists = WorklistOptions.from_section(config.section("Worklists"))
    if worklists.enabled:
        log.info("Worklists served from the folder %s", worklists.database)
    handlers = ScpHandlers(
        options,
        access,
        services.store,
        query,
        RetrieveService(index, services.files),
        WorklistService(
            worklists,
            services.options.default_encoding,
            services.options.case_sensitive_pn,
            services.plugins,
        )
        if worklists.enabled
        else None,
        CommitmentHandlers(access, services.commitment).bindings() if services.commitment else (),
        tls,
    )
    # What the server accepts starts as configured; /tools changes it while it runs.
    services.scp.configure(options.transfer_syntaxes, options.unknown_sop_classes)
    return DicomServer(options, handlers, access, services.scp, services.plugins, tls.server)
