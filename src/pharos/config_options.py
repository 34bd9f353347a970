"""The table of Pharos settings: every option of Orthanc 1.10's configuration file, plus the
"PostgreSQL" section of Orthanc's PostgreSQL plugins.

The Orthanc part was generated once from Orthanc 1.10's documented default configuration
(`Resources/Configuration.json`, see `reference/orthanc-1.10-configuration.json`): the default,
the JSON type and the comment above each option. Options that Orthanc's file only shows
commented-out have no default (None) and keep their example, which `pharos config` prints
commented-out too. Edit this table by hand from now on; `config.py` holds the logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One option: its name, default (None: unset unless given), JSON type and documentation."""

    name: str
    default: Any
    kind: type  # bool, int, float, str, list or dict
    help: str
    # Shown commented-out by `pharos config` for options without a default.
    example: Any = None
    # Sub-settings of a known section (e.g. "PostgreSQL"); other dicts are free-form.
    children: tuple[Setting, ...] = ()

    @property
    def is_section(self) -> bool:
        return bool(self.children)


ORTHANC_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "Name",
        "MyOrthanc",
        str,
        "The logical name of this instance of Orthanc. This one is displayed in Orthanc "
        'Explorer and at the URI "/system".',
    ),
    Setting(
        "StorageDirectory",
        "PharosStorage",
        str,
        "Path to the directory that holds the heavyweight files (i.e. the raw DICOM instances)."
        " Backslashes must be either escaped by doubling them, or replaced by forward slashes "
        '"/". Pharos defaults to "PharosStorage" (Orthanc: "OrthancStorage") so that a fresh '
        "Pharos never writes into an existing Orthanc folder.",
    ),
    Setting(
        "IndexDirectory",
        "PharosStorage",
        str,
        "Path to the directory that holds the SQLite index (if unset, the value of "
        "StorageDirectory is used). This index could be stored on a RAM-drive or a SSD device "
        'for performance reasons. Pharos defaults to "PharosStorage" (Orthanc: '
        '"OrthancStorage"), like StorageDirectory.',
    ),
    Setting(
        "TemporaryDirectory",
        None,
        str,
        "Path to the directory where Orthanc stores its large temporary files. The content of "
        "this folder can be safely deleted once Orthanc is stopped. The folder must exist. The "
        "corresponding filesystem must be properly sized, given that for instance a ZIP archive"
        " of DICOM images created by a job can weight several GBs, and that there might be up "
        'to "min(JobsHistorySize, MediaArchiveSize)" archives to be stored simultaneously. If '
        "not set, Orthanc will use the default temporary folder of the operating system (such "
        'as "/tmp/" on UNIX-like systems, or "C:/Temp" on Microsoft Windows).',
        example="/tmp/Orthanc/",
    ),
    Setting(
        "StorageCompression",
        False,
        bool,
        "Enable the transparent compression of the DICOM instances",
    ),
    Setting(
        "MaximumStorageSize",
        0,
        int,
        'Maximum size of the storage in MB (a value of "0" indicates no limit on the storage size)',
    ),
    Setting(
        "MaximumPatientCount",
        0,
        int,
        "Maximum number of patients that can be stored at a given time in the storage (a value "
        'of "0" indicates no limit on the number of patients)',
    ),
    Setting(
        "MaximumStorageCacheSize",
        128,
        int,
        "Maximum size of the storage cache in MB. The storage cache is stored in RAM and "
        'contains a copy of recently accessed files (written or read). A value of "0" indicates'
        " the cache is disabled. (new in Orthanc 1.10.0)",
    ),
    Setting(
        "LuaScripts",
        [],
        list,
        "List of paths to the custom Lua scripts that are to be loaded into this instance of "
        "Orthanc",
    ),
    Setting(
        "Plugins",
        [],
        list,
        "List of paths to the Python plugins to load: .py files, or folders whose .py files (not"
        ' those starting with "_") are loaded, non-recursively, in name order. Relative paths '
        "start at the folder of the configuration file. Orthanc's native plugins (.so, .dll, "
        ".dylib) cannot be loaded by Pharos: they are reported in the log and skipped. Plugins "
        'of installed packages (entry point group "pharos.plugins") are loaded too.',
    ),
    Setting(
        "ConcurrentJobs",
        2,
        int,
        "Maximum number of processing jobs that are simultaneously running at any given time. A"
        ' value of "0" indicates to use all the available CPU logical cores. To emulate Orthanc'
        ' <= 1.3.2, set this value to "1".',
    ),
    Setting(
        "HttpServerEnabled",
        True,
        bool,
        'Enable the HTTP server. If this parameter is set to "false", Orthanc acts as a pure '
        "DICOM server. The REST API and Orthanc Explorer will not be available.",
    ),
    Setting(
        "OrthancExplorerEnabled",
        True,
        bool,
        "Enable/disable the Orthanc Explorer Web user interface. This option is only meaningful"
        ' if the "HttpServerEnabled" option is set to "true" (new in Orthanc 1.8.2).',
    ),
    Setting(
        "HttpPort",
        8042,
        int,
        "HTTP port for the REST services and for the GUI",
    ),
    Setting(
        "HttpDescribeErrors",
        True,
        bool,
        'When the following option is "true", if an error is encountered while calling the REST'
        " API, a JSON message describing the error is put in the HTTP answer. This feature can "
        "be disabled if the HTTP client does not properly handles such answers.",
    ),
    Setting(
        "HttpCompressionEnabled",
        True,
        bool,
        "Enable HTTP compression to improve network bandwidth utilization, at the expense of "
        'more computations on the server. Orthanc supports the "gzip" and "deflate" HTTP '
        "encodings.",
    ),
    Setting(
        "WebDavEnabled",
        True,
        bool,
        "Enable the publication of the content of the Orthanc server as a WebDAV share (new in "
        "Orthanc 1.8.0). On the localhost, the WebDAV share is mapped as "
        '"http://localhost:8042/webdav/".',
    ),
    Setting(
        "WebDavDeleteAllowed",
        False,
        bool,
        "Whether to allow deletions through the WebDAV share. This is disabled by default to "
        "avoid accidental loss of DICOM instances.",
    ),
    Setting(
        "WebDavUploadAllowed",
        True,
        bool,
        "Whether to allow uploads through the WebDAV share.",
    ),
    Setting(
        "DicomServerEnabled",
        True,
        bool,
        'Enable the DICOM server. If this parameter is set to "false", Orthanc acts as a pure '
        "REST server. It will not be possible to receive files or to do query/retrieve through "
        "the DICOM protocol.",
    ),
    Setting(
        "DicomAet",
        "ORTHANC",
        str,
        "The DICOM Application Entity Title (cannot be longer than 16 characters)",
    ),
    Setting(
        "DicomCheckCalledAet",
        False,
        bool,
        "Check whether the called AET corresponds to the AET of Orthanc during an incoming "
        "DICOM SCU request",
    ),
    Setting(
        "DicomPort",
        4242,
        int,
        "The DICOM port",
    ),
    Setting(
        "DefaultEncoding",
        "Latin1",
        str,
        'The default encoding that is assumed for DICOM files without "SpecificCharacterSet" '
        "DICOM tag, and that is used when answering C-FIND requests (including worklists). The "
        'allowed values are "Ascii", "Utf8", "Latin1", "Latin2", "Latin3", "Latin4", "Latin5", '
        '"Cyrillic", "Windows1251", "Arabic", "Greek", "Hebrew", "Thai", "Japanese", "Chinese",'
        ' "JapaneseKanji", "Korean", and "SimplifiedChinese".',
    ),
    Setting(
        "AcceptedTransferSyntaxes",
        ["1.2.840.10008.1.*"],
        list,
        "The transfer syntaxes that are accepted by Orthanc C-STORE SCP. This is an array "
        'listing the accepted transfer syntax UIDs. Each entry can contain wildcards ("?" or '
        '"*"). By default, all the known transfer syntaxes are accepted. (new in Orthanc 1.9.0)',
    ),
    Setting(
        "DeflatedTransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "JpegTransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "Jpeg2000TransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "JpegLosslessTransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "JpipTransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "Mpeg2TransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "RleTransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present).",
        example=True,
    ),
    Setting(
        "Mpeg4TransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present). (new in Orthanc 1.6.0)",
        example=True,
    ),
    Setting(
        "H265TransferSyntaxAccepted",
        None,
        bool,
        "User-friendly groups of transfer syntaxes that can be enabled or disabled at once. "
        'These options are applied after the main "AcceptedTransferSyntaxes" option has been '
        "applied (if present). (new in Orthanc 1.9.0)",
        example=True,
    ),
    Setting(
        "UnknownSopClassAccepted",
        False,
        bool,
        "Whether Orthanc accepts to act as C-STORE SCP for unknown storage SOP classes (aka. "
        '"promiscuous mode")',
    ),
    Setting(
        "DicomScpTimeout",
        30,
        int,
        "Set the timeout (in seconds) after which the DICOM associations are closed by the "
        "Orthanc SCP (server) if no further DIMSE command is received from the SCU (client).",
    ),
    Setting(
        "RemoteAccessAllowed",
        False,
        bool,
        "Whether remote hosts can connect to the HTTP server",
    ),
    Setting(
        "SslEnabled",
        False,
        bool,
        "Whether or not SSL is enabled",
    ),
    Setting(
        "SslCertificate",
        "certificate.pem",
        str,
        "Path to the SSL certificate used by the HTTP server. The file must be stored in the "
        "PEM format, and must contain both the certificate and the private key. This option is "
        'only meaningful if "SslEnabled" is true.',
    ),
    Setting(
        "SslMinimumProtocolVersion",
        4,
        int,
        'Sets the minimum accepted SSL protocol version (cf. "ssl_protocol_version" option of '
        'civetweb). By default, require SSL 1.2. This option is only meaningful if "SslEnabled"'
        " is true. (new in Orthanc 1.8.2) Values: 0 = SSL2+SSL3+TLS1.0+TLS1.1+TLS1.2, 1 = "
        "SSL3+TLS1.0+TLS1.1+TLS1.2, 2 = TLS1.0+TLS1.1+TLS1.2, 3 = TLS1.1+TLS1.2, 4 = TLS1.2.",
    ),
    Setting(
        "SslCiphersAccepted",
        None,
        list,
        "Set the accepted ciphers for SSL connections. The ciphers must be provided as a list "
        "of strings. If not set, this will default to FIPS 140-2 ciphers. This option is only "
        'meaningful if "SslEnabled" is true. (new in Orthanc 1.8.2)',
        example=["AES128-GCM-SHA256"],
    ),
    Setting(
        "SslVerifyPeers",
        False,
        bool,
        "Whether or not peer client certificates shall be checked. This option is only "
        'meaningful if "SslEnabled" is true.',
    ),
    Setting(
        "SslTrustedClientCertificates",
        "trustedClientCertificates.pem",
        str,
        "Path to a file containing the concatenation of the client SSL certificate(s) that are "
        "trusted to verify the identify of remote HTTP clients. The individual certificate(s) "
        'must be stored in the PEM format. This option is only meaningful if "SslVerifyPeers" '
        "is true.",
    ),
    Setting(
        "AuthenticationEnabled",
        None,
        bool,
        "Whether or not the password protection is enabled (using HTTP basic access "
        'authentication). Starting with Orthanc 1.5.8, if "AuthenticationEnabled" is not '
        "explicitly set, authentication is enabled iff. remote access is allowed (i.e. the "
        'default value of "AuthenticationEnabled" equals that of "RemoteAccessAllowed").',
        example=False,
    ),
    Setting(
        "RegisteredUsers",
        {},
        dict,
        "The list of the registered users. Because Orthanc uses HTTP Basic Authentication, the "
        'passwords are stored as plain text. For instance: "alice" : "alicePassword".',
    ),
    Setting(
        "DicomTlsEnabled",
        False,
        bool,
        "Whether DICOM TLS is enabled in the Orthanc SCP (new in Orthanc 1.9.0)",
    ),
    Setting(
        "DicomTlsCertificate",
        None,
        str,
        "Path to the TLS certificate file (in PEM format) to be used for both Orthanc SCP "
        "(incoming DICOM connections) and Orthanc SCU (outgoing DICOM connections). Note that "
        'contrarily to the "SslCertificate" option, the certificate and its private key must be'
        " split into two separate files. (new in Orthanc 1.9.0)",
        example="orthanc.crt",
    ),
    Setting(
        "DicomTlsPrivateKey",
        None,
        str,
        "Path to the file containing the private key (in PEM format) that corresponds to the "
        'TLS certificate specified in option "DicomTlsCertificate". (new in Orthanc 1.9.0)',
        example="orthanc.key",
    ),
    Setting(
        "DicomTlsTrustedCertificates",
        None,
        str,
        "Path to a file containing all the TLS certificates that Orthanc can trust, both for "
        "its SCP (incoming DICOM connections) and SCU (outgoing DICOM connections). This file "
        "must contain a sequence of PEM certificates. (new in Orthanc 1.9.0)",
        example="trusted.crt",
    ),
    Setting(
        "DicomTlsRemoteCertificateRequired",
        True,
        bool,
        "Whether Orthanc rejects DICOM TLS connections to/from remote modalities that do not "
        'provide a certificate. Setting this option to "true" (resp. "false") corresponds to '
        '"--require-peer-cert" (resp. "--verify-peer-cert") in the DCMTK command-line tools. '
        "(new in Orthanc 1.9.3)",
    ),
    Setting(
        "DicomAlwaysAllowEcho",
        True,
        bool,
        "Whether the Orthanc SCP allows incoming C-ECHO requests, even from SCU modalities it "
        'does not know about (i.e. that are not listed in the "DicomModalities" option above). '
        'Orthanc 1.3.0 is the only version to behave as if this argument were set to "false".',
    ),
    Setting(
        "DicomAlwaysAllowStore",
        True,
        bool,
        "Whether the Orthanc SCP allows incoming C-STORE requests, even from SCU modalities it "
        'does not know about (i.e. that are not listed in the "DicomModalities" option above)',
    ),
    Setting(
        "DicomAlwaysAllowFind",
        False,
        bool,
        "Whether the Orthanc SCP allows incoming C-FIND requests, even from SCU modalities it "
        'does not know about (i.e. that are not listed in the "DicomModalities" option above). '
        'Setting this option to "true" implies security risks. (new in Orthanc 1.9.0) Note: '
        "From Orthanc 1.10.0, this option only applies to C-FIND requests for "
        'patients/studies/series/instances. Use option "DicomAlwaysAllowFindWorklist" for '
        "worklists.",
    ),
    Setting(
        "DicomAlwaysAllowFindWorklist",
        False,
        bool,
        "Whether the Orthanc SCP allows incoming C-FIND requests for worklists, even from SCU "
        'modalities it does not know about (i.e. that are not listed in the "DicomModalities" '
        'option above). Setting this option to "true" implies security risks. (new in Orthanc '
        "1.10.0)",
    ),
    Setting(
        "DicomAlwaysAllowGet",
        False,
        bool,
        "Whether the Orthanc SCP allows incoming C-GET requests, even from SCU modalities it "
        'does not know about (i.e. that are not listed in the "DicomModalities" option above). '
        'Setting this option to "true" implies security risks. (new in Orthanc 1.9.0)',
    ),
    Setting(
        "DicomAlwaysAllowMove",
        False,
        bool,
        "Whether the Orthanc SCP allows incoming C-MOVE requests, even from SCU modalities it "
        'does not know about (i.e. that are not listed in the "DicomModalities" option above). '
        'Setting this option to "true" implies security risks. (new in Orthanc 1.9.7)',
    ),
    Setting(
        "DicomCheckModalityHost",
        False,
        bool,
        "Whether Orthanc checks the IP/hostname address of the remote modality initiating a "
        'DICOM connection (as listed in the "DicomModalities" option above). If this option is '
        'set to "false", Orthanc only checks the AET of the remote modality.',
    ),
    Setting(
        "DicomModalities",
        {},
        dict,
        "The list of the known DICOM modalities. This option is ignored if "
        '"DicomModalitiesInDatabase" is set to "true", in which case you must use the REST API '
        "to define modalities. Each entry maps a symbolic name to [AET, host, port] (optionally"
        ' with a fourth item, the manufacturer: "Generic", "GenericNoWildcardInDates", '
        '"GenericNoUniversalWildcard", "Vitrea" or "GE"), or to an object with "AET", "Host", '
        '"Port", "Manufacturer", "AllowEcho", "AllowFind", "AllowFindWorklist", "AllowGet", '
        '"AllowMove", "AllowStore", "AllowStorageCommitment", "AllowTranscoding", '
        '"UseDicomTls", "LocalAet" and "Timeout". For instance: "sample" : [ "STORESCP", '
        '"127.0.0.1", 2000 ].',
    ),
    Setting(
        "DicomModalitiesInDatabase",
        False,
        bool,
        "Whether to store the DICOM modalities in the Orthanc database instead of in this "
        "configuration file (new in Orthanc 1.5.0)",
    ),
    Setting(
        "DicomEchoChecksFind",
        False,
        bool,
        "Whether the C-ECHO SCU is automatically followed by a C-FIND SCU, while testing the "
        "connectivity from Orthanc to a remote DICOM modality. This allows one to check that "
        "the remote modality does accept C-FIND requests from Orthanc (new in Orthanc 1.8.1).",
    ),
    Setting(
        "DicomScuTimeout",
        10,
        int,
        "The timeout (in seconds) after which the DICOM associations are considered as closed "
        "by the Orthanc SCU (client) if the remote DICOM SCP (server) does not answer.",
    ),
    Setting(
        "DicomScuPreferredTransferSyntax",
        "1.2.840.10008.1.2.1",
        str,
        "During a C-STORE SCU request initiated by Orthanc, if the remote modality doesn't "
        "support the original transfer syntax of some DICOM instance, specify which transfer "
        "syntax should be preferred to transcode this instance (provided the remote modality "
        "accepts this syntax). In Orthanc between 1.7.0 and 1.8.2, this parameter was "
        'implicitly set to "Little Endian Implicit" (1.2.840.10008.1.2). In Orthanc <= 1.6.1 '
        'and in Orthanc >= 1.9.0, this parameter is by default set to "Little Endian Explicit" '
        "(1.2.840.10008.1.2.1). This parameter can possibly correspond to a compressed transfer"
        " syntax. (new in Orthanc 1.9.0)",
    ),
    Setting(
        "DicomThreadsCount",
        4,
        int,
        "Number of threads that are used by the embedded DICOM server. This defines the number "
        "of concurrent DICOM operations that can be run. Note: This is not limiting the number "
        "of concurrent connections. With a single thread, if a C-Find is received during e.g "
        "the transcoding of an incoming C-Store, it will have to wait until the end of the "
        "C-Store before being processed. (new in Orthanc 1.10.0, before this version, the value"
        " was fixed to 4)",
    ),
    Setting(
        "OrthancPeers",
        {},
        dict,
        "The list of the known Orthanc peers. This option is ignored if "
        '"OrthancPeersInDatabase" is set to "true", in which case you must use the REST API to '
        "define Orthanc peers. Each entry maps a name to [url] or [url, username, password], or"
        ' to an object with "Url", "Username", "Password", "HttpHeaders", "CertificateFile", '
        '"CertificateKeyFile", "CertificateKeyPassword", "Pkcs11" and "Timeout". For instance: '
        '"peer" : [ "http://127.0.0.1:8043/", "alice", "alicePassword" ].',
    ),
    Setting(
        "OrthancPeersInDatabase",
        False,
        bool,
        "Whether to store the Orthanc peers in the Orthanc database instead of in this "
        "configuration file (new in Orthanc 1.5.0)",
    ),
    Setting(
        "HttpProxy",
        "",
        str,
        "Parameters of the HTTP proxy to be used by Orthanc. If set to the empty string, no "
        'HTTP proxy is used. For instance: "192.168.0.1:3128" or '
        '"proxyUser:proxyPassword@192.168.0.1:3128".',
    ),
    Setting(
        "HttpVerbose",
        False,
        bool,
        'If set to "true", debug messages from libcurl will be issued whenever Orthanc makes an'
        " outgoing HTTP request. This is notably useful to debug HTTPS-related problems.",
    ),
    Setting(
        "HttpTimeout",
        60,
        int,
        "Set the timeout for HTTP requests issued by Orthanc (in seconds).",
    ),
    Setting(
        "HttpsVerifyPeers",
        True,
        bool,
        "Enable the verification of the peers during HTTPS requests. This option must be set to"
        ' "false" if using self-signed certificates. Pay attention that setting this option to '
        '"false" results in security risks! Reference: http://curl.haxx.se/docs/sslcerts.html',
    ),
    Setting(
        "HttpsCACertificates",
        "",
        str,
        "Path to the CA (certification authority) certificates to validate peers in HTTPS "
        'requests. From curl documentation ("--cacert" option): "Tells curl to use the '
        "specified certificate file to verify the peers. The file may contain multiple CA "
        'certificates. The certificate(s) must be in PEM format." On Debian-based systems, this'
        ' option can be set to "/etc/ssl/certs/ca-certificates.crt"',
    ),
    Setting(
        "UserMetadata",
        {},
        dict,
        "Dictionary of symbolic names for the user-defined metadata. Each entry must map an "
        "unique string to an unique number between 1024 and 65535. Reserved values: the Orthanc"
        ' whole-slide imaging plugin uses metadata 4200. For instance: "Sample" : 1024.',
    ),
    Setting(
        "UserContentType",
        {},
        dict,
        "Dictionary of symbolic names for the user-defined types of attached files. Each entry "
        "must map an unique string to an unique number between 1024 and 65535. Optionally, a "
        "second argument can provided to specify a MIME content type for the attachment. For "
        'instance: "sample" : 1024, "sample2" : [ 1025, "application/pdf" ].',
    ),
    Setting(
        "StableAge",
        60,
        int,
        "Number of seconds without receiving any instance before a patient, a study or a series"
        " is considered as stable.",
    ),
    Setting(
        "StrictAetComparison",
        False,
        bool,
        "By default, Orthanc compares AET (Application Entity Titles) in a case-insensitive "
        'way. Setting this option to "true" will enable case-sensitive matching.',
    ),
    Setting(
        "StoreMD5ForAttachments",
        True,
        bool,
        'When the following option is "true", the MD5 of the DICOM files will be computed and '
        "stored in the Orthanc database. This information can be used to detect disk "
        "corruption, at the price of a small performance overhead.",
    ),
    Setting(
        "LimitFindResults",
        0,
        int,
        "The maximum number of results for a single C-FIND request at the Patient, Study or "
        'Series level. Setting this option to "0" means no limit.',
    ),
    Setting(
        "LimitFindInstances",
        0,
        int,
        "The maximum number of results for a single C-FIND request at the Instance level. "
        'Setting this option to "0" means no limit.',
    ),
    Setting(
        "LogExportedResources",
        False,
        bool,
        'If this option is set to "true" (default behavior until Orthanc 1.3.2), Orthanc will '
        "log the resources that are exported to other DICOM modalities or Orthanc peers, inside"
        ' the URI "/exports". Setting this option to "false" is useful to prevent the index to '
        "grow indefinitely in auto-routing tasks (this is the default behavior since Orthanc "
        "1.4.0).",
    ),
    Setting(
        "KeepAlive",
        True,
        bool,
        "Enable or disable HTTP Keep-Alive (persistent HTTP connections). Setting this option "
        'to "true" prevents Orthanc issue #32 ("HttpServer does not support multiple HTTP '
        'requests in the same TCP stream"), but can possibly slow down HTTP clients that do not'
        ' support persistent connections. The default behavior used to be "false" in Orthanc <='
        ' 1.5.1. Setting this option to "false" is also recommended if Orthanc is compiled '
        "against Mongoose.",
    ),
    Setting(
        "TcpNoDelay",
        True,
        bool,
        "Enable or disable Nagle's algorithm. Only taken into consideration if Orthanc is "
        "compiled to use CivetWeb. Experiments show that best performance can be obtained by "
        'setting both "KeepAlive" and "TcpNoDelay" to "true". Beware however of caveats: '
        "https://eklitzke.org/the-caveats-of-tcp-nodelay",
    ),
    Setting(
        "HttpThreadsCount",
        50,
        int,
        "Number of threads that are used by the embedded HTTP server.",
    ),
    Setting(
        "StoreDicom",
        True,
        bool,
        'If this option is set to "false", Orthanc will run in index-only mode. The DICOM files'
        " will not be stored on the drive: Orthanc only indexes the small subset of the "
        'so-called "main DICOM tags" in its SQL database. Note that this option might prevent '
        "the upgrade to newer versions of Orthanc. Also note that this behavior might not be "
        "available with the storage area plugins.",
    ),
    Setting(
        "DicomAssociationCloseDelay",
        5,
        int,
        "DICOM associations initiated by Lua scripts are kept open as long as new DICOM "
        "commands are issued. This option sets the number of seconds of inactivity to wait "
        "before automatically closing a DICOM association used by Lua. If set to 0, the "
        "connection is closed immediately. This option is only used in Lua scripts.",
    ),
    Setting(
        "QueryRetrieveSize",
        100,
        int,
        "Maximum number of query/retrieve DICOM requests that are maintained by Orthanc. The "
        "least recently used requests get deleted as new requests are issued.",
    ),
    Setting(
        "CaseSensitivePN",
        False,
        bool,
        'When handling a C-FIND SCP request, setting this flag to "true" will enable '
        "case-sensitive match for PN value representation (such as PatientName). By default, "
        "the search is case-insensitive, which does not follow the DICOM standard.",
    ),
    Setting(
        "Pkcs11",
        None,
        dict,
        "Configure PKCS#11 to use hardware security modules (HSM) and smart cards when carrying"
        " on HTTPS client authentication.",
        example={"Module": "/usr/local/lib/libbeidpkcs11.so", "Pin": "1234", "Verbose": True},
    ),
    Setting(
        "LoadPrivateDictionary",
        True,
        bool,
        'If set to "false", Orthanc will not load its default dictionary of private tags. This '
        "might be necessary if you cannot import a DICOM file encoded using the Implicit VR "
        "Endian transfer syntax, and containing private tags: Such an import error might stem "
        "from a bad dictionary. You can still list your private tags of interest in the "
        '"Dictionary" configuration option below.',
    ),
    Setting(
        "Locale",
        None,
        str,
        "Locale to be used by Orthanc. Currently, only used if comparing strings in a "
        "case-insensitive way. It should be safe to keep this value undefined, which lets "
        "Orthanc autodetect the suitable locale.",
        example="en_US.UTF-8",
    ),
    Setting(
        "Dictionary",
        {},
        dict,
        "Register a new tag in the dictionary of DICOM tags that are known to Orthanc. Each "
        "line must contain the tag (formatted as 2 hexadecimal numbers), the value "
        "representation (2 upcase characters), a nickname for the tag, possibly the minimum "
        "multiplicity (> 0 with defaults to 1), possibly the maximum multiplicity (0 means "
        "arbitrary multiplicity, defaults to 1), and possibly the Private Creator (for private "
        "tags). Note: For private tags, you should only declare the lower 8 bits of the element"
        " since the higher 8 bits may vary from one file to the other. For instance: "
        '"0014,1020" : [ "DA", "ValidationExpiryDate", 1, 1 ].',
    ),
    Setting(
        "ExternalDictionaries",
        None,
        list,
        "Load a set of external DICOM dictionaries in order to replace the default "
        "dictionaries. This option must contain a set of files in the DCMTK format. The order "
        "of the dictionaries *is* important. This option can be used to turn Orthanc into a "
        "DICONDE server. (new in Orthanc 1.9.4)",
        example=["/usr/share/libdcmtk12/dicom.dic", "/usr/share/libdcmtk12/diconde.dic"],
    ),
    Setting(
        "SynchronousCMove",
        True,
        bool,
        'Whether to run DICOM C-MOVE operations synchronously. If set to "false" (asynchronous '
        "mode), each incoming C-MOVE request results in the creation of a new background job. "
        'Up to Orthanc 1.3.2, the implicit behavior was to use synchronous C-MOVE ("true"). '
        "Between Orthanc 1.4.0 and 1.4.2, the default behavior was set to asynchronous C-MOVE "
        '("false"). Since Orthanc 1.5.0, the default behavior is back to synchronous C-MOVE '
        '("true", which ensures backward compatibility with Orthanc <= 1.3.2).',
    ),
    Setting(
        "JobsHistorySize",
        10,
        int,
        "Maximum number of completed jobs that are kept in memory. A processing job is "
        'considered as complete once it is tagged as "Success" or "Failure". Since Orthanc '
        '1.5.0, a value of "0" indicates to keep no job in memory (i.e. jobs are removed from '
        "the history as soon as they are completed), which prevents the use of some features of"
        " Orthanc (typically, synchronous mode in REST API) and should be avoided for "
        "non-developers.",
    ),
    Setting(
        "SaveJobs",
        True,
        bool,
        'Whether to save the jobs into the Orthanc database. If this option is set to "true", '
        "the pending/running/completed jobs are automatically reloaded from the database if "
        'Orthanc is stopped then restarted (except if the "--no-jobs" command-line argument is '
        'specified). This option should be set to "false" if multiple Orthanc servers are using'
        " the same database (e.g. if PostgreSQL or MariaDB/MySQL is used).",
    ),
    Setting(
        "OverwriteInstances",
        False,
        bool,
        "Specifies how Orthanc reacts when it receives a DICOM instance whose SOPInstanceUID is"
        ' already stored. If set to "true", the new instance replaces the old one. If set to '
        '"false", the new instance is discarded and the old one is kept. Up to Orthanc 1.4.1, '
        'the implicit behavior corresponded to "false".',
    ),
    Setting(
        "MediaArchiveSize",
        1,
        int,
        "Maximum number of ZIP/media archives that are maintained by Orthanc, as a response to "
        "the asynchronous creation of archives. The least recently used archives get deleted as"
        " new archives are generated. This option was introduced in Orthanc 1.5.0, and has no "
        "effect on the synchronous generation of archives.",
    ),
    Setting(
        "ExtraMainDicomTags",
        {"Instance": [], "Series": [], "Study": [], "Patient": []},
        dict,
        "Main DICOM tags stored in the index in addition to Orthanc's default ones, for each "
        'level ("Patient", "Study", "Series", "Instance"), by name or as "gggg,eeee" (new in '
        "Orthanc 1.11.0). They are searched by /tools/find without reading the files, and "
        'shown in the "MainDicomTags" of the resources. Instances stored before a change of '
        "this option keep the tags they were indexed with until they are reconstructed (POST "
        "/tools/reconstruct, or /{level}/{id}/reconstruct). Sequences are not supported.",
    ),
    Setting(
        "StorageAccessOnFind",
        "Always",
        str,
        "Performance setting to specify how Orthanc accesses the storage area during find "
        "operations (C-FIND, /tools/find API route and QIDO-RS in dicom-web). Three modes are "
        'available: (1) "Always" allows Orthanc to read the storage area as soon as it needs an'
        ' information that is not present in its database (slowest mode), (2) "Never" prevents '
        "Orthanc from accessing the storage area, and makes it uses exclusively its database "
        '(fastest mode), and (3) "Answers" allows Orthanc to read the storage area to generate '
        "its answers, but not to filter the DICOM resources (balance between the two modes). By"
        ' default, the mode is "Always", which corresponds to the behavior of Orthanc <= 1.5.0.',
    ),
    Setting(
        "MetricsEnabled",
        True,
        bool,
        'Whether Orthanc monitors its metrics (new in Orthanc 1.5.4). If set to "true", the '
        'metrics can be retrieved at "/tools/metrics-prometheus" formetted using the Prometheus'
        " text-based exposition format.",
    ),
    Setting(
        "ExecuteLuaEnabled",
        False,
        bool,
        'Whether calls to URI "/tools/execute-script" is enabled. Starting with Orthanc 1.5.8, '
        "this URI is disabled by default for security.",
    ),
    Setting(
        "RestApiWriteToFileSystemEnabled",
        False,
        bool,
        "Whether the Rest API can write to the filesystem (e.g. in /instances/../export route)."
        " Starting with Orthanc 1.12.0, this URI is disabled by default for security.",
    ),
    Setting(
        "HttpRequestTimeout",
        30,
        int,
        "Set the timeout while serving HTTP requests by the embedded Web server, in seconds. "
        'This corresponds to option "request_timeout_ms" of Mongoose/Civetweb. It will set the '
        'socket options "SO_RCVTIMEO" and "SO_SNDTIMEO" to the specified value.',
    ),
    Setting(
        "DefaultPrivateCreator",
        "",
        str,
        "Set the default private creator that is used by Orthanc when it looks for a private "
        'tag in its dictionary (cf. "Dictionary" option), or when it creates/modifies a DICOM '
        "file (new in Orthanc 1.6.0).",
    ),
    Setting(
        "StorageCommitmentReportsSize",
        100,
        int,
        "Maximum number of storage commitment reports (i.e. received from remote modalities) to"
        " be kept in memory (new in Orthanc 1.6.0).",
    ),
    Setting(
        "TranscodeDicomProtocol",
        True,
        bool,
        "Whether Orthanc transcodes DICOM files to an uncompressed transfer syntax over the "
        "DICOM protocol, if the remote modality does not support compressed transfer syntaxes "
        "(new in Orthanc 1.7.0).",
    ),
    Setting(
        "BuiltinDecoderTranscoderOrder",
        "After",
        str,
        "If some plugin to decode/transcode DICOM instances is installed, this option specifies"
        " whether the built-in decoder/transcoder of Orthanc (that uses DCMTK) is applied "
        "before or after the plugins, or is not applied at all (new in Orthanc 1.7.0). The "
        'allowed values for this option are "After" (default value, corresponding to the '
        'behavior of Orthanc <= 1.6.1), "Before", or "Disabled".',
    ),
    Setting(
        "IngestTranscoding",
        None,
        str,
        "If this option is set, Orthanc will transparently transcode any incoming DICOM "
        "instance to the given transfer syntax before storing it into its database. Beware that"
        " this might result in high CPU usage (if transcoding to some compressed transfer "
        "syntax), or in higher disk consumption (if transcoding to an uncompressed syntax). "
        "Also, beware that transcoding to a transfer syntax with lossy compression (notably "
        'JPEG) will change the "SOPInstanceUID" DICOM tag, and thus the Orthanc identifier at '
        "the instance level, which might break external workflow.",
        example="1.2.840.10008.1.2",
    ),
    Setting(
        "IngestTranscodingOfUncompressed",
        True,
        bool,
        "Whether ingest transcoding is applied to incoming DICOM instances that have an "
        "uncompressed transfer syntax, i.e. Little Endian Implicit, Little Endian Explicit or "
        "Big Endian Explicit (new in Orthanc 1.8.2).",
    ),
    Setting(
        "IngestTranscodingOfCompressed",
        True,
        bool,
        "Whether ingest transcoding is applied to incoming DICOM instances that have a "
        "compressed transfer syntax (new in Orthanc 1.8.2).",
    ),
    Setting(
        "DicomLossyTranscodingQuality",
        90,
        int,
        "The compression level that is used when transcoding to one of the lossy/JPEG transfer "
        "syntaxes (integer between 1 and 100).",
    ),
    Setting(
        "SyncStorageArea",
        True,
        bool,
        'Whether "fsync()" is called after each write to the storage area (new in Orthanc '
        '1.7.4). If this option is set to "true", Orthanc will run more slowly, but the DICOM '
        "are guaranteed to be immediately written to the disk. This option only makes sense if "
        'the builtin filesystem storage area is used. It defaults to "false" in Orthanc <= '
        '1.7.3, and to "true" in Orthanc >= 1.7.4.',
    ),
    Setting(
        "MallocArenaMax",
        5,
        int,
        'If specified, on compatible systems, call "mallopt(M_ARENA_MAX, ...)" while starting '
        "Orthanc. This has the same effect at setting the environment variable "
        '"MALLOC_ARENA_MAX". This avoids large growth in RES memory if the threads of the '
        "embedded HTTP server have to allocate large chunks of memory (typically the case with "
        'large DICOM files). By setting "MallocArenaMax" to "N", these threads share "N" memory'
        ' pools (known as "arenas"). Setting this option to "0" doesn\'t call mallopt()", which '
        "was the behavior of Orthanc <= 1.8.1.",
    ),
    Setting(
        "DeidentifyLogs",
        True,
        bool,
        "Deidentify/anonymize the contents of the logs (notably C-FIND, C-GET, and C-MOVE "
        "queries submitted to Orthanc) according to Table E.1-1 of the DICOM standard (new in "
        "Orthanc 1.8.2)",
    ),
    Setting(
        "DeidentifyLogsDicomVersion",
        "2021b",
        str,
        'If "DeidentifyLogs" is true, this sets the DICOM standard to follow for the '
        'deidentification/anonymization of the query contents. Possible values are "2008", '
        '"2017c" and "2021b" (new in Orthanc 1.8.2)',
    ),
    Setting(
        "MaximumPduLength",
        131072,
        int,
        "Maximum length of the PDU (Protocol Data Unit) in the DICOM network protocol, "
        "expressed in bytes: the largest PDU Pharos accepts to receive, as SCU and as SCP. "
        "The allowed range is [4096,131072]. Pharos defaults to 128KB (Orthanc: 16KB): peers "
        "then send an image in 8 times fewer PDUs, which nearly doubles C-STORE throughput "
        "over one association. (new in Orthanc 1.9.0)",
    ),
    Setting(
        "DatabaseServerIdentifier",
        None,
        str,
        "Arbitrary identifier of this Orthanc server when storing its global properties if a "
        "custom index plugin is used. This identifier is only useful in the case of multiple "
        "readers/writers, in order to avoid collisions between multiple Orthanc servers. If "
        "unset, this identifier is taken as a SHA-1 hash derived from the MAC addresses of the "
        "network interfaces, and from the AET and TCP ports used by Orthanc. Manually setting "
        "this option is needed in Docker/Kubernetes environments. (new in Orthanc 1.9.2)",
        example="Orthanc1",
    ),
    Setting(
        "CheckRevisions",
        False,
        bool,
        "Whether Orthanc protects the modification of metadata and attachments using revisions,"
        ' which is done using the HTTP headers "ETag", "If-Match" and "If-None-Match" in the '
        "calls to the REST API. This is needed to handle collisions between concurrent "
        "modifications in the case of multiple writers. The database back-end must support this"
        " option, which is notably *not* yet the case of the built-in SQLite index. (new in "
        "Orthanc 1.9.2)",
    ),
    Setting(
        "SynchronousZipStream",
        True,
        bool,
        "Whether Orthanc streams ZIP archive/media to the HTTP client. Setting this option to "
        '"false" corresponds to the behavior of Orthanc <= 1.9.3: The ZIP is first entirely '
        "written to a temporary file, then sent to the client (which necessitates disk space "
        'and might lead to HTTP timeouts on large archives). If set to "true", the chunks of '
        "the ZIP file are progressively sent as soon as one DICOM file gets compressed (new in "
        "Orthanc 1.9.4)",
    ),
    Setting(
        "ZipLoaderThreads",
        0,
        int,
        "Default number of loader threads when generating Zip archive/media. A value of 0 means"
        " reading and writing are performed in sequence (default behaviour). A value > 1 is "
        "meaningful only if the storage is a distributed network storage (e.g object storage "
        "plugin). (new experimental feature in Orthanc 1.10.0)",
    ),
)


# Defaults of the PostgreSQL plugins as their code applies them (orthanc-databases,
# Framework/PostgreSQL/PostgreSQLParameters.cpp and PostgreSQL/NEWS, release 7.0 and later); the
# Orthanc Book's sample section ("Database"/"Username"/"Password": "orthanc") is an example only.
POSTGRESQL_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "EnableIndex",
        False,
        bool,
        "Store the index (the metadata database) in PostgreSQL instead of the embedded SQLite "
        "database. As with Orthanc's plugin, it must be set to true explicitly.",
    ),
    Setting(
        "EnableStorage",
        False,
        bool,
        "Store the DICOM files themselves in PostgreSQL (as large objects) instead of in "
        '"StorageDirectory". As with Orthanc\'s plugin, it must be set to true explicitly.',
    ),
    Setting(
        "Host",
        "localhost",
        str,
        "Host name or IP address of the PostgreSQL server. Ignored if ConnectionUri is set.",
    ),
    Setting(
        "Port",
        5432,
        int,
        "TCP port of the PostgreSQL server. Ignored if ConnectionUri is set.",
    ),
    Setting(
        "Database",
        "",
        str,
        "Name of the database, which must exist. If empty, libpq's default is used (the user "
        'name). The Orthanc Book\'s sample configuration uses "orthanc". Ignored if ConnectionUri '
        "is set.",
    ),
    Setting(
        "Username",
        "",
        str,
        "User name for the connection. If empty, libpq's default is used (the name of the "
        "operating-system user). Ignored if ConnectionUri is set.",
    ),
    Setting(
        "Password",
        "",
        str,
        "Password for the connection. If empty, none is sent (libpq may still find one in "
        "~/.pgpass or PGPASSWORD). Ignored if ConnectionUri is set.",
    ),
    Setting(
        "ConnectionUri",
        None,
        str,
        "A libpq connection URI (postgresql://user:password@host:port/database) or "
        'keyword/value string ("host=db port=5432 dbname=orthanc ..."). When set, it replaces '
        "Host, Port, Database, Username, Password and EnableSsl.",
        example="postgresql://orthanc:orthanc@localhost:5432/orthanc",
    ),
    Setting(
        "EnableSsl",
        False,
        bool,
        'Require an encrypted connection ("sslmode=require"); otherwise SSL is disabled '
        '("sslmode=disable"). Ignored if ConnectionUri is set. (new in release 3.0)',
    ),
    Setting(
        "Lock",
        True,
        bool,
        "Take an exclusive advisory lock on the database at start-up, so that only one server "
        "uses it. Must be set to false when several Pharos (or Orthanc) processes share the "
        "database.",
    ),
    Setting(
        "IndexConnectionsCount",
        50,
        int,
        "Number of simultaneous connections from the index to PostgreSQL. (new in release 4.0; "
        "the default was 1 up to release 6.2 and is 50 since release 7.0)",
    ),
    Setting(
        "MaximumConnectionRetries",
        10,
        int,
        "How many times to retry connecting to the database at start-up, and how many times a "
        "transaction is replayed after a collision between writers or a transient error. (new "
        "in release 3.0)",
    ),
    Setting(
        "ConnectionRetryInterval",
        5,
        int,
        "Seconds to wait between two attempts to connect to the database at start-up. (new in "
        "release 3.0)",
    ),
    Setting(
        "EnableVerboseLogs",
        False,
        bool,
        "Log the SQL statements being executed. (new in release 6.0)",
    ),
    Setting(
        "TransactionMode",
        "ReadCommitted",
        str,
        'Isolation level of the transactions: "ReadCommitted" lets several threads and '
        'processes write at the same time; "Serializable" serializes all writes. (new in '
        'release 6.0; the default was "Serializable" up to release 6.2 and is "ReadCommitted" '
        "since release 7.0)",
    ),
)

# The options of Orthanc's DICOMweb plugin that Pharos implements (its defaults).
DICOMWEB_SETTINGS: tuple[Setting, ...] = (
    Setting("Enable", True, bool, "Whether DICOMweb support is enabled"),
    Setting(
        "Root",
        "/dicom-web/",
        str,
        "Root URI of the DICOMweb API (for QIDO-RS, STOW-RS and WADO-RS)",
    ),
    Setting(
        "QidoCaseSensitive",
        True,
        bool,
        "For QIDO-RS server, whether search is case sensitive (fuzzymatching=true in a query "
        "makes person names case-insensitive)",
    ),
    Setting(
        "Host",
        "",
        str,
        "Hard-codes the host (and port) of the URLs in answers (RetrieveURL, BulkDataURI); "
        "empty: the Host header of each request",
    ),
    Setting(
        "Ssl",
        False,
        bool,
        "Whether the URLs in answers use https (else the scheme of the request)",
    ),
    Setting(
        "PublicRoot",
        "",
        str,
        "Root URI of the DICOMweb API as HTTP clients see it, for the URLs in answers, when a "
        'reverse proxy serves it under another path (e.g. "/pacs/dicom-web/"); empty: Root',
    ),
    Setting("EnableWado", True, bool, "Whether WADO-URI (previously known as WADO) is enabled"),
    Setting("WadoRoot", "/wado", str, "Root URI of the WADO-URI (aka. WADO) API"),
    Setting(
        "StudiesMetadata",
        "Full",
        str,
        'How study-level WADO-RS metadata is built: "Full" (every file, cached per series), '
        '"MainDicomTags" (the index only) or "Extrapolate" (the index, and '
        "StudiesMetadataExtrapolatedTags read from 3 instances picked at random)",
    ),
    Setting(
        "SeriesMetadata",
        "Full",
        str,
        'How series-level WADO-RS metadata is built: "Full", "MainDicomTags" or "Extrapolate" '
        "(then with SeriesMetadataExtrapolatedTags), as StudiesMetadata",
    ),
    Setting(
        "StudiesMetadataExtrapolatedTags",
        [],
        list,
        'Tags (names or "gggg,eeee") added to study metadata in "Extrapolate" mode',
    ),
    Setting(
        "SeriesMetadataExtrapolatedTags",
        [],
        list,
        'Tags (names or "gggg,eeee") added to series metadata in "Extrapolate" mode',
    ),
    Setting(
        "CorsAllowedOrigins",
        [],
        list,
        'Pharos only: origins (e.g. "https://viewer.example.org", or "*" for any) whose web '
        "pages may call DICOMweb and WADO-URI (CORS headers, preflight OPTIONS answered). "
        "Empty: no CORS headers, browsers allow same-origin pages only",
    ),
    Setting(
        "CorsAllowCredentials",
        False,
        bool,
        "Pharos only: whether those pages may send credentials (HTTP Basic authentication, "
        'cookies); never with "*" (the requesting origin is then echoed instead)',
    ),
    Setting(
        "ServersInDatabase",
        False,
        bool,
        "Whether the remote DICOMweb servers are kept in the index (defined with PUT and "
        "DELETE on /dicom-web/servers/{name}, shared by every process using the index, kept "
        "across restarts) instead of read from Servers",
    ),
    Setting(
        "StowMaxInstances",
        10,
        int,
        "For the STOW-RS client, the maximum number of instances in one HTTP request "
        "(0 = no limit)",
    ),
    Setting(
        "StowMaxSize",
        10,
        int,
        "For the STOW-RS client, the size in MB above which no more instances are added to "
        "one HTTP request (0 = no limit)",
    ),
    Setting(
        "Servers",
        {},
        dict,
        "The remote DICOMweb servers that the DICOMweb client (/dicom-web/servers) talks to. "
        "Each entry maps a name to [url] or [url, username, password], or to an object with "
        '"Url", "Username", "Password", "HttpHeaders", "HasDelete", "ChunkedTransfers", '
        '"CertificateFile", "CertificateKeyFile", "CertificateKeyPassword" and "Timeout". For '
        'instance: "sample" : [ "http://127.0.0.1:8042/dicom-web/", "alice", "alicePassword" ].',
    ),
)

WORKLISTS_SETTINGS: tuple[Setting, ...] = (
    Setting("Enable", False, bool, "Whether the DICOM server answers worklist C-FIND requests"),
    Setting(
        "Database",
        "",
        str,
        "The folder of the worklists: DICOM files with the .wl extension (e.g. written by "
        "dcmtk's dump2dcm), read at each request",
    ),
    Setting(
        "FilterIssuerAet",
        False,
        bool,
        "Answer only the worklists whose ScheduledStationAETitle is the AE title of the "
        "modality that asks (unless the request names one)",
    ),
    Setting("LimitAnswers", 0, int, "The maximum number of answers to a request (0: no limit)"),
)

PHAROS_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "PostgreSQL",
        None,
        dict,
        "Use a PostgreSQL server for the index and/or the storage area, configured as for "
        "Orthanc's PostgreSQL plugins (same section, option names and defaults), so that an "
        "existing section works unchanged. Without it (or with EnableIndex false) Pharos uses "
        "its embedded SQLite index in IndexDirectory.",
        children=POSTGRESQL_SETTINGS,
    ),
    Setting(
        "StorageBackend",
        "FileSystem",
        str,
        'Where the DICOM files and other attachments are kept: "FileSystem" (the folder '
        "StorageDirectory, laid out as Orthanc does) or the name of a storage backend offered "
        "by a plugin (hook pharos_storage_areas). An unknown name stops the start-up.",
    ),
    Setting(
        "KeepStoredFilesInPageCache",
        False,
        bool,
        "Whether a file just written to the FileSystem storage area stays in the operating "
        "system's page cache. By default Pharos drops its pages once it is fsynced "
        "(SyncStorageArea): a DICOM store writes far more than it reads back soon, and the "
        "cache is better kept for the index and the files being read. Set it to true if "
        "new files are usually read again at once (e.g. forwarded by a routing script) and "
        "the disk is slow.",
    ),
    Setting(
        "DicomWeb",
        None,
        dict,
        "The DICOMweb server (QIDO-RS, WADO-RS, STOW-RS), configured as Orthanc's DICOMweb "
        "plugin (same section and option names).",
        children=DICOMWEB_SETTINGS,
    ),
    Setting(
        "Worklists",
        None,
        dict,
        "The modality worklists server (C-FIND on the Modality Worklist Information Model), "
        "configured as Orthanc's sample Worklists plugin (same section and option names).",
        children=WORKLISTS_SETTINGS,
    ),
)

SETTINGS: tuple[Setting, ...] = ORTHANC_SETTINGS + PHAROS_SETTINGS

# Headers printed by `pharos config` before the first setting of each group.
GROUP_TITLES: Mapping[str, str] = {
    "Name": "General configuration of Orthanc",
    "HttpServerEnabled": "Configuration of the HTTP server",
    "DicomServerEnabled": "Configuration of the DICOM server",
    "RemoteAccessAllowed": "Security-related options for the HTTP server",
    "DicomTlsEnabled": "Security-related options for the DICOM connections (SCU/SCP)",
    "DicomModalities": "Network topology",
    "UserMetadata": "Advanced options",
    "PostgreSQL": "PostgreSQL index and storage area (as Orthanc's PostgreSQL plugins)",
}

_PLUGIN = "section of an Orthanc plugin"
_NEWER = "option of a newer Orthanc release"

# Options that Orthanc (or one of its plugins) knows and Pharos does not implement yet: reported
# as such at start-up rather than as unknown, and ignored.
UNSUPPORTED: Mapping[str, str] = {
    "Gdcm": _PLUGIN,
    "Python": _PLUGIN,
    "PythonScript": _PLUGIN,
    "PythonVerbose": _PLUGIN,
    "Transfers": _PLUGIN,
    "OrthancExplorer2": _PLUGIN,
    "Authorization": _PLUGIN,
    "ServeFolders": _PLUGIN,
    "WebViewer": _PLUGIN,
    "StoneWebViewer": _PLUGIN,
    "OHIF": _PLUGIN,
    "MySQL": _PLUGIN,
    "Odbc": _PLUGIN,
    "AwsS3Storage": _PLUGIN,
    "AzureBlobStorage": _PLUGIN,
    "GoogleCloudStorage": _PLUGIN,
    "AdvancedStorage": _PLUGIN,
    "Housekeeper": _PLUGIN,
    "DelayedDeletion": _PLUGIN,
    "MultitenantDicom": _PLUGIN,
    "Indexer": _PLUGIN,
    "Warnings": _NEWER,
    "MaximumStorageMode": _NEWER,
    "JobsEngineThreadsCount": _NEWER,
    "AcceptedSopClasses": _NEWER,
    "RejectedSopClasses": _NEWER,
    "DicomDefaultRetrieveMethod": _NEWER,
    "DicomTlsMinimumProtocolVersion": _NEWER,
    "ReadOnly": _NEWER,
}

_PG_NEWER = "option of a newer PostgreSQL plugin release"

# Options of Orthanc's DICOMweb plugin that Pharos does not implement yet: reported as such
# rather than as unknown, and ignored.
_DW_LATER = "option of Orthanc's DICOMweb plugin"
UNSUPPORTED_DICOMWEB: Mapping[str, str] = {
    name: _DW_LATER
    for name in (
        "EnableMetadataCache",
        "MetadataWorkerThreadsCount",
        "EnablePerformanceLogs",
        "ReadOnly",
        "Debug",
    )
}

UNSUPPORTED_POSTGRESQL: Mapping[str, str] = {
    "HousekeepingInterval": _PG_NEWER,
    "AllowInconsistentChildCounts": _PG_NEWER,
    "UseDynamicConnectionPool": _PG_NEWER,
    "Schema": _PG_NEWER,
    "ApplicationName": _PG_NEWER,
}
