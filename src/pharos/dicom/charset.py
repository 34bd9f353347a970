"""Character sets: Orthanc's encoding names, and decoding text values as Orthanc does.

One decoder serves both the index (main DICOM tags, at ingest) and the tag renderings, so a
value is searched for exactly as it is shown.
"""

from __future__ import annotations

import re

from pydicom.charset import CODES_TO_ENCODINGS, python_encoding

# Orthanc's `Encoding` names (configuration option "DefaultEncoding") -> Python codec; None is
# Orthanc's "Ascii", which keeps only printable ASCII and newlines (Toolbox::ConvertToAscii).
ENCODINGS: dict[str, str | None] = {
    "Ascii": None,
    "Utf8": "utf-8",
    "Latin1": "iso8859-1",
    "Latin2": "iso8859-2",
    "Latin3": "iso8859-3",
    "Latin4": "iso8859-4",
    "Latin5": "iso8859-9",
    "Cyrillic": "iso8859-5",
    "Windows1251": "cp1251",
    "Arabic": "iso8859-6",
    "Greek": "iso8859-7",
    "Hebrew": "iso8859-8",
    "Thai": "tis-620",
    "Japanese": "shift_jis",
    "Chinese": "gb18030",
    "JapaneseKanji": "iso2022_jp",
    "Korean": "euc_kr",
    "SimplifiedChinese": "gb2312",
}
_BY_KEY = {name.lower(): name for name in ENCODINGS}


def canonical_encoding(name: str) -> str:
    """The Orthanc spelling of an encoding name given in any case; ValueError if unknown."""
    try:
        return _BY_KEY[name.strip().replace("-", "").replace("_", "").lower()]
    except KeyError:
        allowed = ", ".join(ENCODINGS)
        raise ValueError(f"unknown encoding {name!r}; allowed values: {allowed}") from None


# Orthanc's encoding names -> the Specific Character Set term declaring them
# (GetDicomSpecificCharacterSet).
CHARACTER_SET_TERMS: dict[str, str] = {
    "Ascii": "ISO_IR 6",
    "Utf8": "ISO_IR 192",
    "Latin1": "ISO_IR 100",
    "Latin2": "ISO_IR 101",
    "Latin3": "ISO_IR 109",
    "Latin4": "ISO_IR 110",
    "Latin5": "ISO_IR 148",
    "Cyrillic": "ISO_IR 144",
    "Arabic": "ISO_IR 127",
    "Greek": "ISO_IR 126",
    "Hebrew": "ISO_IR 138",
    "Thai": "ISO_IR 166",
    "Japanese": "ISO_IR 13",
    "Chinese": "GB18030",
    "JapaneseKanji": "ISO 2022 IR 87",
    "Korean": "ISO 2022 IR 149",
    "SimplifiedChinese": "ISO 2022 IR 58",
}

# Specific Character Set defined terms Orthanc supports (GetDicomEncoding), as Encoding names
_CHARSET_TERMS: dict[str, str] = {
    "ISO_IR 6": "Ascii",
    "ISO 2022 IR 6": "Ascii",
    "ISO_IR 192": "Utf8",
    "GB18030": "Chinese",
    "GBK": "Chinese",
    "ISO 2022 IR 149": "Korean",
    "ISO 2022 IR 87": "JapaneseKanji",
    "ISO 2022 IR 58": "SimplifiedChinese",
}
# fmt: off
for _number, _name in (
    ("100", "Latin1"), ("101", "Latin2"), ("109", "Latin3"), ("110", "Latin4"),
    ("148", "Latin5"), ("144", "Cyrillic"), ("127", "Arabic"), ("126", "Greek"),
    ("138", "Hebrew"), ("166", "Thai"), ("13", "Japanese"),
):
    _CHARSET_TERMS[f"ISO_IR {_number}"] = _name
    _CHARSET_TERMS[f"ISO 2022 IR {_number}"] = _name
# fmt: on

_ASCII_DROP = bytes([*range(0, 10), *range(11, 32), *range(127, 256)])
_ISO2022_ESCAPE = re.compile(
    "\x8e\x1bN|\x8f\x1bO|\x1b[\x20-\x2f]+[\x30-\x7f]|\x1b[nowNO|}~]|[\x0e\x0f]"
)
_ISO2022_CONTROLS = re.compile(b"[\x0e\x0f\x1b]")
_C_SPACES = " \t\n\v\f\r"  # isspace() of the C locale, used by Toolbox::StripSpaces


def _codec(encoding: str) -> str | None:
    try:
        return ENCODINGS[canonical_encoding(encoding)]
    except ValueError:
        raise ValueError(f"unknown Orthanc encoding: {encoding!r}") from None


class TextDecoder:
    """Decodes string values to str as Orthanc does (Toolbox::ConvertToUtf8)."""

    __slots__ = ("ascii_fast_path", "code_extensions", "codec", "iso2022")

    def __init__(
        self, codec: str | None, code_extensions: bool, iso2022: list[str] | None = None
    ) -> None:
        self.codec = codec
        self.code_extensions = code_extensions
        # Python codecs of the terms of (0008,0005) when it has several, see _decode_iso2022
        self.iso2022 = iso2022
        # ASCII bytes mean the same in every supported codec except the stateful ISO 2022 one
        self.ascii_fast_path = codec != "iso2022_jp"

    @classmethod
    def for_terms(cls, terms: list[str] | None, default_encoding: str) -> TextDecoder:
        """FromDcmtkBridge::DetectEncoding: the first non-empty term of (0008,0005) decides;
        an unsupported term means ASCII, no (0008,0005) means the default encoding; more than
        one value means ISO 2022 code extensions."""
        default = _codec(default_encoding)
        if terms is None:
            return cls(default, False)
        terms = [term.strip(_C_SPACES).upper() for term in terms]
        extensions = len(terms) > 1
        iso2022 = None
        if extensions and all(term in python_encoding for term in terms):
            iso2022 = [python_encoding[term or "ISO_IR 6"] for term in terms]
        for term in terms:
            if term:
                name = _CHARSET_TERMS.get(term)
                return cls(None if name is None else ENCODINGS[name], extensions, iso2022)
        return cls(default, extensions, iso2022)

    def decode(self, raw: bytes, vr: str) -> str:
        if self.iso2022 is not None and b"\x1b" in raw:
            return _decode_iso2022(raw, self.iso2022, vr)
        if self.codec is None:
            return raw.translate(None, _ASCII_DROP).decode("Ascii")
        if (
            self.ascii_fast_path
            and raw.isascii()
            and not (self.code_extensions and _ISO2022_CONTROLS.search(raw))
        ):
            return raw.decode("Ascii")
        # boost::locale's "skip" policy drops undecodable bytes, like errors="ignore"
        text = raw.decode(self.codec, errors="ignore")
        if self.code_extensions:
            text = _ISO2022_ESCAPE.sub("", text)  # Toolbox::RemoveIso2022EscapeSequences
        return text


# What resets the character set to the first one after an escape sequence (PS3.5 6.1.2.5.3)
_PN_DELIMITERS = frozenset(b"^=\\")
_TEXT_DELIMITERS = frozenset(b"\r\n\t\f\\")
_ISO2022_FRAGMENT = re.compile(b"(^[^\x1b]+|\x1b[^\x1b]*)")
_STATEFUL_CODECS = frozenset({"iso2022_jp", "iso2022_jp_2"})


def _decode_iso2022(raw: bytes, codecs: list[str], vr: str) -> str:
    """ISO 2022 code extensions decoded as pydicom does, for values with escape sequences.

    Orthanc 1.10 decodes the whole value with the first supported term and then deletes the
    escape sequences, which garbles e.g. 'ISO 2022 IR 13\\ISO 2022 IR 87' (SCSH32); here each
    escape sequence switches to its character set, as the standard says. Undecodable bytes are
    dropped, as Orthanc does, and nothing warns.
    """
    delimiters = _PN_DELIMITERS if vr == "PN" else _TEXT_DELIMITERS
    first = codecs[0]
    parts: list[str] = []
    for fragment in _ISO2022_FRAGMENT.findall(raw):
        if not fragment.startswith(b"\x1b"):
            parts.append(fragment.decode(first, errors="ignore"))
            continue
        size = 4 if fragment.startswith((b"\x1b$(", b"\x1b$)")) else 3
        codec = CODES_TO_ENCODINGS.get(fragment[:size])
        if codec is None:  # unknown escape: drop it, keep the first character set
            parts.append(_ISO2022_ESCAPE.sub("", fragment.decode(first, errors="ignore")))
        elif codec in _STATEFUL_CODECS:
            parts.append(fragment.decode(codec, errors="ignore"))
        else:
            body = fragment[size:]
            cut = next((i for i, byte in enumerate(body) if byte in delimiters), len(body))
            parts.append(body[:cut].decode(codec, errors="ignore"))
            parts.append(body[cut:].decode(first, errors="ignore"))
    return "".join(parts)
