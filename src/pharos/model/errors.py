"""Errors, with the codes, descriptions and HTTP statuses of Orthanc's `ErrorCode`.

Every failure a user can cause is a `PharosError`; the HTTP layer turns it into Orthanc's
error JSON (`OrthancStatus`, `OrthancError`, `HttpStatus`, `Details`, ...).
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(Enum):
    """(Orthanc code, HTTP status, Orthanc's description)."""

    INTERNAL_ERROR = (-1, 500, "Internal error")
    NOT_IMPLEMENTED = (2, 501, "Not implemented yet")
    PARAMETER_OUT_OF_RANGE = (3, 400, "Parameter out of range")
    BAD_PARAMETER_TYPE = (5, 400, "Bad type for a parameter")
    BAD_SEQUENCE_OF_CALLS = (6, 400, "Bad sequence of calls")
    INEXISTENT_ITEM = (7, 404, "Accessing an inexistent item")
    BAD_REQUEST = (8, 400, "Bad request")
    NETWORK_PROTOCOL = (9, 500, "Error in the network protocol")
    DATABASE = (11, 500, "Error with the database engine")
    URI_SYNTAX = (12, 400, "Badly formatted URI")
    INEXISTENT_FILE = (13, 404, "Inexistent file")
    CANNOT_WRITE_FILE = (14, 403, "Cannot write to file")
    BAD_FILE_FORMAT = (15, 400, "Bad file format")
    TIMEOUT = (16, 504, "Timeout")
    UNKNOWN_RESOURCE = (17, 404, "Unknown resource")
    INCOMPATIBLE_DATABASE_VERSION = (18, 500, "Incompatible version of the database")
    FULL_STORAGE = (19, 507, "The file storage is full")
    CORRUPTED_FILE = (20, 500, "Corrupted file (e.g. inconsistent MD5 hash)")
    INEXISTENT_TAG = (21, 404, "Inexistent tag")
    READ_ONLY = (22, 403, "Cannot modify a read-only data structure")
    UNKNOWN_DICOM_TAG = (27, 404, "Unknown DICOM tag")
    BAD_JSON = (28, 400, "Cannot parse a JSON document")
    UNAUTHORIZED = (29, 401, "Bad credentials were provided to an HTTP request")
    EMPTY_REQUEST = (33, 400, "The request is empty")
    NOT_ACCEPTABLE = (
        34,
        406,
        "Cannot send a response which is acceptable according to the Accept HTTP header",
    )
    DATABASE_UNAVAILABLE = (
        36,
        503,
        "The database is currently not available (probably a transient situation)",
    )
    BAD_RANGE = (41, 416, "Incorrect range request")
    DATABASE_CANNOT_SERIALIZE = (
        42,
        503,
        "Database could not serialize access due to concurrent update, "
        "the transaction should be retried",
    )
    REVISION = (
        43,
        409,
        "A bad revision number was provided, which might indicate conflict "
        "between multiple writers",
    )
    FORBIDDEN_ACCESS = (45, 403, "Access to a resource is forbidden")
    CANNOT_STORE_INSTANCE = (2018, 500, "Cannot store an instance")
    CANNOT_EXECUTE_LUA = (2031, 500, "Cannot execute a Lua command")
    UNSUPPORTED_MEDIA_TYPE = (3000, 415, "Unsupported media type")

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]

    @property
    def description(self) -> str:
        return self.value[2]


class PharosError(Exception):
    """A failure with an Orthanc error code and, usually, details saying exactly what is wrong."""

    def __init__(self, code: ErrorCode, details: str | None = None, http_status: int | None = None):
        super().__init__(details or code.description)
        self.code = code
        self.details = details
        self.http_status = http_status or code.http_status


def unknown_resource(what: str) -> PharosError:
    return PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown resource: {what}")


def bad_file(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_FILE_FORMAT, details)
