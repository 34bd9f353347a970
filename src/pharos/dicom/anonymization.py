"""The Basic Application Level Confidentiality Profile of DICOM PS3.15 Annex E, table E.1-1
("Basic Profile" column), as of the 2023b edition: what anonymization does to each attribute.

Action codes, as the standard names them:
  X  remove;  Z  replace with a zero-length value;  D  replace with a non-zero-length dummy;
  U  replace with a UID mapped consistently within the operation;  K  keep;
  X/Z, X/D, Z/D, X/Z/D, X/Z/U*  the combinations (the least information that keeps the IOD
  valid; see `resolve`).
The table applies at every depth of the dataset (in sequence items too). Attributes not listed
are kept. Pure data and pure functions: the modification module applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydicom.tag import BaseTag, Tag

PROFILE_2023B = "2023b"
# Orthanc's older DicomVersion names: only the 2023b table is implemented (it supersedes them;
# every attribute they list is in it), so they map to it.
VERSION_ALIASES = {"2008": PROFILE_2023B, "2017c": PROFILE_2023B, "2021b": PROFILE_2023B}
DEFAULT_VERSION = PROFILE_2023B


class Action(Enum):
    REMOVE = "remove"
    EMPTY = "empty"
    DUMMY = "dummy"
    UID = "uid"
    KEEP = "keep"


def resolve(code: str) -> Action:
    """One action per code. The combinations keep the least information: X wins when allowed
    (X/Z, X/D, X/Z/D); Z/D empties; X/Z/U* (references to other instances) keeps the sequence,
    whose UIDs are mapped since they are U attributes themselves."""
    if code == "X/Z/U*":
        return Action.KEEP
    if code.startswith("X"):
        return Action.REMOVE
    if code.startswith("Z"):
        return Action.EMPTY
    return {"D": Action.DUMMY, "U": Action.UID, "K": Action.KEEP}[code]


# gggg,eeee per action code (Basic Profile column of table E.1-1, 2023b).
_TABLE = {
    "X/Z/U*": "0008,1140 0008,2112",
    "U": """
        0000,1001 0002,0003 0004,1511 0008,0014 0008,0017 0008,0018 0008,0019 0008,0058
        0008,1155 0008,1195 0008,3010 0018,1002 0018,100B 0018,2042 0020,000D 0020,000E
        0020,0052 0020,0200 0020,9161 0020,9164 0028,1199 0028,1214 003A,0310 0040,0554
        0040,4023 0040,A124 0040,A171 0040,A172 0040,A402 0040,DB0C 0040,DB0D 0062,0021
        0064,0003 0070,031A 0070,1101 0070,1102 0088,0140 0400,0100 3006,0024 3006,00C2
        300A,0013 300A,0083 300A,0609 300A,0650 300A,0700 300A,0785 3010,0006 3010,000B
        3010,0013 3010,0015 3010,0031 3010,003B 3010,006E 3010,006F
    """,
    "Z": """
        0008,0020 0008,0030 0008,0050 0008,0090 0008,009C 0010,0010 0010,0020 0010,0030
        0010,0040 0012,0021 0012,0030 0012,0031 0012,0050 0012,0060 0018,1203 0020,0010
        0040,0513 0040,0562 0040,0610 0040,2016 0040,2017 0040,A082 0040,A088 0400,0564
        3006,0008 3006,0009 3006,0026 3006,00A6 300A,0611 300A,0615 300A,067D 300E,0004
        300E,0005 3010,000F 3010,0017 3010,001B 3010,0043 3010,005A 3010,005C 3010,007A
        3010,007B 3010,007F 3010,0081
    """,
    "Z/D": "0008,0023 0008,0033 0018,0010 0018,9919 0070,0084",
    "D": """
        0008,0106 0008,0107 0012,0010 0012,0020 0012,0040 0012,0042 0012,0081 0018,11BB
        0018,9074 0018,9151 0018,9367 0018,9369 0018,936A 0018,9371 0018,9623 0018,9701
        0018,9804 0034,0001 0034,0002 0034,0005 0034,0007 003A,0314 0040,0512 0040,0551
        0040,1101 0040,A027 0040,A030 0040,A073 0040,A075 0040,A120 0040,A121 0040,A122
        0040,A123 0040,A13A 0040,A730 0042,0011 0044,0104 0068,6226 0068,6270 006A,0003
        006A,0005 0070,0001 0072,000A 0072,005E 0072,005F 0072,0061 0072,0063 0072,0065
        0072,0066 0072,0068 0072,006A 0072,006B 0072,006C 0072,006D 0072,006E 0072,0070
        0072,0071 0400,0105 0400,0115 0400,0562 0400,0563 0400,0565 2100,0140 3006,0002
        3008,0024 3008,0025 3008,0162 3008,0164 3008,0166 3008,0168 300A,0002 300A,022C
        300A,022E 300A,0608 300A,0619 300A,0623 300A,062A 300A,067C 300A,0734 300A,0736
        300A,073A 300A,0741 300A,0742 300A,0760 300A,0783 300C,0127 3010,002D 3010,0033
        3010,0034 3010,0035 3010,0038 3010,0054
    """,
    "X/Z": """
        0008,0022 0008,0032 0008,1110 0010,2203 0032,1060 0040,0555 2200,0002 2200,0005
        3008,0105 300A,00B2 300E,0008
    """,
    "X/D": """
        0008,0012 0008,0021 0008,0031 0008,1072 0018,1030 0018,1400 0018,700A 0018,700C
        0018,700E 0018,9516 0018,9517 0040,A032 3008,0054 3008,0056 3008,0250 3008,0251
        300A,0006 300A,0007 3010,004C 3010,004D 3010,0056 3010,0077
    """,
    "X/Z/D": """
        0008,0013 0008,002A 0008,0080 0008,0082 0008,1010 0008,1070 0008,1111 0018,1000
    """,
    "X": """
        0000,1000 0008,0015 0008,0024 0008,0025 0008,0034 0008,0035 0008,0054 0008,0055
        0008,0081 0008,0092 0008,0094 0008,0096 0008,009D 0008,0201 0008,1000 0008,1030
        0008,103E 0008,1040 0008,1041 0008,1048 0008,1049 0008,1050 0008,1052 0008,1060
        0008,1062 0008,1080 0008,1084 0008,1088 0008,1120 0008,2111 0008,4000 0010,0021
        0010,0032 0010,0050 0010,0101 0010,0102 0010,1000 0010,1001 0010,1002 0010,1005
        0010,1010 0010,1020 0010,1030 0010,1040 0010,1050 0010,1060 0010,1080 0010,1081
        0010,1090 0010,1100 0010,2000 0010,2110 0010,2150 0010,2152 0010,2154 0010,2155
        0010,2160 0010,2180 0010,21A0 0010,21B0 0010,21C0 0010,21D0 0010,21F0 0010,2297
        0010,2299 0010,4000 0012,0051 0012,0071 0012,0072 0012,0082 0012,0086 0012,0087
        0014,407C 0014,407E 0016,002B 0016,004B 0016,004D 0016,004E 0016,004F 0016,0050
        0016,0051 0016,0070 0016,0071 0016,0072 0016,0073 0016,0074 0016,0075 0016,0076
        0016,0077 0016,0078 0016,0079 0016,007A 0016,007B 0016,007C 0016,007D 0016,007E
        0016,007F 0016,0080 0016,0081 0016,0082 0016,0083 0016,0084 0016,0085 0016,0086
        0016,0087 0016,0088 0016,0089 0016,008A 0016,008B 0016,008C 0016,008D 0016,008E
        0018,0027 0018,0035 0018,1004 0018,1005 0018,1007 0018,1008 0018,1009 0018,100A
        0018,1012 0018,1014 0018,1042 0018,1043 0018,1072 0018,1073 0018,1078 0018,1079
        0018,1200 0018,1201 0018,1202 0018,4000 0018,5011 0018,9185 0018,9373 0018,937B
        0018,937F 0018,9424 0018,9937 0018,A002 0018,A003 0020,0027 0020,3401 0020,3403
        0020,3405 0020,3406 0020,4000 0020,9158 0028,4000 0032,0012 0032,0032 0032,0033
        0032,0034 0032,0035 0032,1000 0032,1001 0032,1010 0032,1011 0032,1020 0032,1021
        0032,1030 0032,1032 0032,1033 0032,1040 0032,1041 0032,1050 0032,1051 0032,1066
        0032,1067 0032,1070 0032,4000 0038,0004 0038,0010 0038,0011 0038,0014 0038,001A
        0038,001B 0038,001C 0038,001D 0038,001E 0038,0020 0038,0021 0038,0030 0038,0032
        0038,0040 0038,0050 0038,0060 0038,0061 0038,0062 0038,0064 0038,0300 0038,0400
        0038,0500 0038,4000 003A,0329 003A,032B 0040,0001 0040,0002 0040,0003 0040,0004
        0040,0005 0040,0006 0040,0007 0040,0009 0040,000B 0040,0010 0040,0011 0040,0012
        0040,0241 0040,0242 0040,0243 0040,0244 0040,0245 0040,0250 0040,0251 0040,0253
        0040,0254 0040,0275 0040,0280 0040,0310 0040,050A 0040,051A 0040,0600 0040,0602
        0040,06FA 0040,1001 0040,1002 0040,1004 0040,1005 0040,100A 0040,1010 0040,1011
        0040,1102 0040,1103 0040,1104 0040,1400 0040,2001 0040,2004 0040,2005 0040,2008
        0040,2009 0040,2010 0040,2011 0040,2400 0040,3001 0040,4005 0040,4008 0040,4010
        0040,4011 0040,4025 0040,4027 0040,4028 0040,4030 0040,4034 0040,4035 0040,4036
        0040,4037 0040,4050 0040,4051 0040,4052 0040,A023 0040,A024 0040,A033 0040,A078
        0040,A07A 0040,A07C 0040,A110 0040,A112 0040,A192 0040,A193 0040,A307 0040,A352
        0040,A353 0040,A354 0040,A358 0040,DB06 0040,DB07 0040,E004 0044,0004 0044,000B
        0044,0010 0044,0105 0050,001B 0050,0020 0050,0021 006A,0006 0070,0082 0070,0083
        0070,0086 0074,1234 0074,1236 0088,0200 0088,0904 0088,0906 0088,0910 0088,0912
        0100,0420 0400,0310 0400,0402 0400,0403 0400,0404 0400,0550 0400,0551 0400,0552
        0400,0561 0400,0600 2030,0020 2100,0040 2100,0050 2100,0070 3002,0121 3002,0123
        3006,0004 3006,0006 3006,0028 3006,0038 3006,0085 3006,0088 300A,0003 300A,0004
        300A,000B 300A,000E 300A,0016 300A,0072 300A,00C3 300A,00DD 300A,0196 300A,01A6
        300A,01B2 300A,0216 300A,02EB 300A,0676 300A,078E 300A,0792 300A,0794 300A,079A
        300C,0113 3010,0036 3010,0037 3010,0061 3010,0085 4000,0010 4000,4000 4008,0040
        4008,0042 4008,0100 4008,0101 4008,0102 4008,0108 4008,0109 4008,010A 4008,010B
        4008,010C 4008,0111 4008,0112 4008,0113 4008,0114 4008,0115 4008,0118 4008,0119
        4008,011A 4008,0200 4008,0202 4008,0300 4008,4000 FFFA,FFFA FFFC,FFFC
    """,
}


def _parse_table() -> dict[BaseTag, str]:
    table: dict[BaseTag, str] = {}
    for code, tags in _TABLE.items():
        for text in tags.split():
            group, element = text.split(",")
            table[Tag(int(group, 16), int(element, 16))] = code
    return table


BASIC_PROFILE: dict[BaseTag, str] = _parse_table()


@dataclass(frozen=True, slots=True)
class RepeatingGroup:
    """Attributes of the repeating groups (50xx curves, 60xx overlays), all removed (X)."""

    first_group: int
    last_group: int
    element: int | None  # None: every element of the groups

    def contains(self, tag: int) -> bool:
        group, element = tag >> 16, tag & 0xFFFF
        if not self.first_group <= group <= self.last_group:
            return False
        return self.element is None or element == self.element


REMOVED_GROUPS = (
    RepeatingGroup(0x5000, 0x50FF, None),  # Curve Data
    RepeatingGroup(0x6000, 0x60FF, 0x3000),  # Overlay Data
    RepeatingGroup(0x6000, 0x60FF, 0x4000),  # Overlay Comments
)


def code_of(tag: int) -> str | None:
    """The basic-profile action code of a standard attribute, None when it is kept."""
    code = BASIC_PROFILE.get(Tag(tag))
    if code is not None:
        return code
    if any(group.contains(tag) for group in REMOVED_GROUPS):
        return "X"
    return None


def action_of(tag: int) -> Action | None:
    code = code_of(tag)
    return None if code is None else resolve(code)


def profile_version(value: object) -> str:
    """The table for Orthanc's `DicomVersion` (ValueError for unknown names)."""
    if value is None:
        return DEFAULT_VERSION
    if not isinstance(value, str):
        raise ValueError('"DicomVersion" must be a string such as "2023b"')
    text = value.strip()
    if text == PROFILE_2023B:
        return text
    if text in VERSION_ALIASES:
        return VERSION_ALIASES[text]
    known = ", ".join([PROFILE_2023B, *VERSION_ALIASES])
    raise ValueError(f"Unknown DicomVersion {value!r} (known: {known})")


# D: dummy values by VR (lengths within each VR's limit); other VRs are emptied.
DUMMY_VALUES = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "TM": "000000",
    "UC": "ANONYMIZED",
    "UR": "ANONYMIZED",
    "UT": "ANONYMIZED",
}
