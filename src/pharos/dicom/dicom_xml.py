"""The Native DICOM Model (PS3.19 A.1), `application/dicom+xml`, from the DICOM JSON model
(PS3.18 F.2): what QIDO-RS and WADO-RS metadata answer to a client asking for XML, one XML
document per dataset."""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pydicom.datadict import keyword_for_tag

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def dicom_xml(dataset: dict[str, Any]) -> bytes:
    """One dataset of the JSON model as a Native DICOM Model document (UTF-8)."""
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel>']
    _attributes(dataset, out)
    out.append("</NativeDicomModel>\n")
    return "".join(out).encode("utf-8")


def _attributes(dataset: dict[str, Any], out: list[str]) -> None:
    for key in sorted(dataset):
        node = dataset[key]
        vr = node.get("vr", "UN")
        tag = int(key, 16)
        keyword = keyword_for_tag(tag) if tag & 0xFFFF else ""
        header = f'<DicomAttribute tag="{key.upper()}" vr="{vr}"'
        if keyword:
            header += f' keyword="{keyword}"'
        out.append(header + ">")
        if "BulkDataURI" in node:
            out.append(f"<BulkData uri={quoteattr(node['BulkDataURI'])}/>")
        elif "InlineBinary" in node:
            out.append(f"<InlineBinary>{escape(node['InlineBinary'])}</InlineBinary>")
        elif vr == "SQ":
            for number, item in enumerate(node.get("Value", []), start=1):
                out.append(f'<Item number="{number}">')
                _attributes(item or {}, out)
                out.append("</Item>")
        elif vr == "PN":
            for number, name in enumerate(node.get("Value", []), start=1):
                out.append(f'<PersonName number="{number}">')
                for group in _PN_GROUPS:
                    text = (name or {}).get(group)
                    if text:
                        out.append(f"<{group}>")
                        for component, part in zip(_PN_COMPONENTS, text.split("^"), strict=False):
                            if part:
                                out.append(f"<{component}>{escape(_text(part))}</{component}>")
                        out.append(f"</{group}>")
                out.append("</PersonName>")
        else:
            for number, value in enumerate(node.get("Value", []), start=1):
                if value is None:
                    out.append(f'<Value number="{number}"/>')
                else:
                    out.append(f'<Value number="{number}">{escape(_text(value))}</Value>')
        out.append("</DicomAttribute>")


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _NOT_XML.sub("", str(value))  # control characters XML 1.0 cannot hold
