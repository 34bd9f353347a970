"""A deterministic corpus of small DICOM instances for the search benchmark (`bench/find.py`).

`Corpus.plan(instances, seed)` draws the metadata (patients, studies, series; small enough to
keep in memory: 100,000 instances are ~40,000 series), so the benchmark knows the right answer
to every query; `Corpus.files()` encodes the instances lazily, one at a time. The encoder writes
Explicit VR Little Endian directly (~20 us per file, against ~2 ms through pydicom), so
generating 100,000 files does not compete with the server for the CPU.

Distribution: one patient per 10 instances, 2 studies per patient, 1-3 series per study, the
instances of a study spread over its series; study modality weighted CT 30, MR 22, CR 12,
DX 10, US 10, MG 6, PT 5, NM 5 (PET studies carry CT series too); StudyDate uniform over
2015-2024. PatientName "Family^Given": 270 ASCII family names from many countries, Zipf-like
(the commonest on ~6 % of patients), 73 accented ones ("Müller", "Ødegård", ...) and a few in
other scripts; 1 name in 6 is non-ASCII, half of all names are in upper case; non-ASCII names
are encoded in UTF-8 (ISO_IR 192) or, half of the time when they fit, Latin-1 (ISO_IR 100).
"""

from __future__ import annotations

import datetime
import itertools
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from pharos.model.ids import hash_public_id

UID_ROOT = "1.2.826.0.1.3680043.8.498.77"  # pydicom's root, plus a branch of our own
FIRST_DAY = datetime.date(2015, 1, 1)
SPAN_DAYS = (datetime.date(2025, 1, 1) - FIRST_DAY).days  # 10 years

# Modality: (weight, SOP class UID, study descriptions, body parts).
MODALITIES: dict[str, tuple[int, str, tuple[str, ...], tuple[str, ...]]] = {
    "CT": (30, "1.2.840.10008.5.1.4.1.1.2", (
        "CT CHEST W/O CONTRAST", "CT HEAD W/O CONTRAST", "CT ABDOMEN PELVIS W CONTRAST",
        "CT ANGIO CHEST PE", "CT SPINE LUMBAR"), ("CHEST", "HEAD", "ABDOMEN", "LSPINE")),
    "MR": (22, "1.2.840.10008.5.1.4.1.1.4", (
        "MR BRAIN W/WO CONTRAST", "MR KNEE LEFT", "MR LUMBAR SPINE", "MR PROSTATE",
        "MR SHOULDER RIGHT"), ("BRAIN", "KNEE", "LSPINE", "PROSTATE", "SHOULDER")),
    "CR": (12, "1.2.840.10008.5.1.4.1.1.1", (
        "XR CHEST PA AND LATERAL", "XR PELVIS AP"), ("CHEST", "PELVIS")),
    "DX": (10, "1.2.840.10008.5.1.4.1.1.1.1", (
        "XR HAND 3 VIEWS", "XR ANKLE LEFT", "XR CHEST PORTABLE"), ("HAND", "ANKLE", "CHEST")),
    "US": (10, "1.2.840.10008.5.1.4.1.1.6.1", (
        "US ABDOMEN COMPLETE", "US OB 2ND TRIMESTER", "US THYROID"),
        ("ABDOMEN", "UTERUS", "NECK")),
    "MG": (6, "1.2.840.10008.5.1.4.1.1.1.2", (
        "MG SCREENING BILATERAL", "MG DIAGNOSTIC LEFT"), ("BREAST",)),
    "PT": (5, "1.2.840.10008.5.1.4.1.1.128", (
        "PET/CT FDG WHOLE BODY", "PET/CT PSMA"), ("WHOLEBODY",)),
    "NM": (5, "1.2.840.10008.5.1.4.1.1.20", (
        "NM BONE SCAN WHOLE BODY", "NM MYOCARDIAL PERFUSION"), ("WHOLEBODY", "HEART")),
}  # fmt: skip

FAMILY = """
Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Thomas Taylor Moore Jackson
Martin Lee Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill
Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards
Collins Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Kelly Howard Ward
Cox Richardson Wood Watson Brooks Bennett Gray Hughes Price Sanders Myers Long Ross Foster
O'Brien McDonald MacLeod O'Sullivan Walsh Byrne Ryan O'Connor Schmidt Schneider Fischer Weber
Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Neumann Schwarz Zimmermann Braun
Hartmann Lange Werner Krause Lehmann Dubois Durand Moreau Laurent Simon Michel Garnier Rousseau
Fournier Girard Bonnet Mercier Fontaine Rossi Russo Ferrari Esposito Bianchi Romano Colombo
Ricci Marino Greco Bruno Gallo Conti De_Luca Costa Jansen De_Vries Van_den_Berg Van_Dijk Bakker
Visser Smit Mulder De_Boer Dekker Janssens Peeters Maes Jacobs Mertens Willems Nowak Kowalski
Kowalczyk Lewandowski Novak Horvat Nagy Varga Svoboda Popescu Ionescu Petrov Ivanov Smirnov
Popov Kaya Demir Papadopoulos Nguyen Tran Pham Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou
Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kim Park Choi Kang Patel Shah Singh
Kumar Sharma Gupta Khan Ali Hassan Hussein Haddad Cohen Levi Friedman Silva Santos Oliveira
Souza Pereira Ferreira Almeida Carvalho Gomes Ribeiro Martins Fernandes Garcia Rodriguez
Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez Torres Flores Rivera Gomez Diaz Cruz
Morales Ortiz Gutierrez Chavez Ramos Ruiz Alvarez Mendoza Castillo Jimenez Moreno Romero Herrera
Medina Aguilar Vargas Hansen Johansen Olsen Larsen Andersen Pedersen Nielsen Kristensen Jensen
Berg Haugen Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson
Virtanen Korhonen Nieminen Mullins Mulligan Mullen Muldoon
"""
FAMILY_NON_ASCII = """
Müller Schäfer Köhler Jäger Krüger Böhm Günther Jürgens Möller Vögele Ødegård Sørensen Løvås
Åberg Ångström Öberg Häkkinen Mäkelä Järvinen Lindén Björk Lefèvre Gérard Lévêque García
Rodríguez Martínez Hernández López González Pérez Sánchez Gómez Díaz Álvarez Jiménez Muñoz
Ibáñez Núñez Gonçalves Simões Magalhães Wójcik Kamińska Łukasiewicz Dąbrowski Wiśniewski
Zieliński Dvořák Novotný Procházka Černý Kovács Szabó Tóth Horváth Y\u0131lmaz Öztürk Çelik Şahin
Doğan Ştefănescu Þórsson Guðmundsdóttir Nguyễn Trần Phạm Côté Gagné Bérubé Иванов Смирнова
Παπαδόπουλος
"""
GIVEN = """
James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Margaret Mark
Sandra Paul Ashley Steven Emily Andrew Donna Kevin Michelle Hans Peter Klaus Anna Maria Sophie
Lukas Emma Pierre Marie Jean Camille Giuseppe Giulia Marco Francesca Jan Anke Piotr Katarzyna
Ivan Olga Mehmet Wei Mei Hiroshi Yuki Min-jun Ji-woo Raj Priya Ahmed Fatima Omar Leila Carlos
Ana Luis Sofia Miguel Lucia Lars Ingrid Erik Astrid Mikko Aino Sean Siobhan
"""
GIVEN_NON_ASCII = """
Jürgen Jörg Günter Björn Åse Øystein Søren Hélène François Jérôme Amélie Céline José María
Jesús Inés Joël Zoë Małgorzata Łukasz Paweł Ondřej Jiří Tomáš Zoltán Gábor Ömer Çağla Şule
Đorđe Þór Sigurður Dagný João Thảo Đức
"""
# Names written in other scripts, with their romanized (alphabetic) group first, as in PS3.5.
OTHER_SCRIPTS = ("Yamada^Tarou=山田^太郎", "Wang^XiaoDong=王^小東", "Kim^Hong-Do=김^홍도")


def names(text: str) -> list[str]:
    return [name.replace("_", " ") for name in text.split()]


# --- a minimal Explicit VR Little Endian encoder ------------------------------------------

_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_TRANSFER_SYNTAX = b"1.2.840.10008.1.2.1"


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in (b"UI", b"OB") else b" "
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def encode(sop_class: str, sop_instance: str, elements: list[tuple[int, bytes, bytes]]) -> bytes:
    """A Part 10 file: preamble, file meta information, then `elements` (sorted by tag)."""
    meta = b"".join(
        (
            _element(0x00020001, b"OB", b"\0\1"),
            _element(0x00020002, b"UI", sop_class.encode()),
            _element(0x00020003, b"UI", sop_instance.encode()),
            _element(0x00020010, b"UI", _TRANSFER_SYNTAX),
            _element(0x00020012, b"UI", f"{UID_ROOT}.0".encode()),
            _element(0x00020013, b"SH", b"PHAROS_BENCH"),
        )
    )
    body = b"".join(_element(tag, vr, value) for tag, vr, value in sorted(elements))
    group_length = _element(0x00020000, b"UL", struct.pack("<I", len(meta)))
    return b"\0" * 128 + b"DICM" + group_length + meta + body


# --- the plan --------------------------------------------------------------------------------


@dataclass(slots=True)
class Patient:
    patient_id: str
    name: str
    birth_date: str
    sex: str
    charset: str  # "" (ASCII), "ISO_IR 100" or "ISO_IR 192"
    studies: list[int] = field(default_factory=list)  # indices into Corpus.studies

    @property
    def public_id(self) -> str:
        return hash_public_id(self.patient_id)


@dataclass(slots=True)
class Series:
    uid: str
    number: int
    modality: str
    description: str
    instances: int


@dataclass(slots=True)
class Study:
    patient: int  # index into Corpus.patients
    uid: str
    date: str
    time: str
    accession: str
    description: str
    modality: str
    body_part: str
    series: list[Series]


@dataclass
class Corpus:
    seed: int
    patients: list[Patient]
    studies: list[Study]

    @property
    def instance_count(self) -> int:
        return sum(s.instances for study in self.studies for s in study.series)

    @property
    def series_count(self) -> int:
        return sum(len(study.series) for study in self.studies)

    @classmethod
    def plan(cls, instances: int, seed: int = 42) -> Corpus:
        """The metadata of `instances` instances (at least 10): 1 patient per 10 instances."""
        if instances < 10:
            raise ValueError("the corpus needs at least 10 instances")
        rng = random.Random(seed)
        family = names(FAMILY)
        family_non_ascii = names(FAMILY_NON_ASCII)
        given = names(GIVEN)
        given_non_ascii = names(GIVEN_NON_ASCII)
        # Zipf-like frequencies: a few very common family names, a long tail.
        family_weights = [1 / (rank + 1) ** 0.7 for rank in range(len(family))]
        family_cumulative = list(itertools.accumulate(family_weights))
        modalities = list(MODALITIES)
        modality_cumulative = list(itertools.accumulate(m[0] for m in MODALITIES.values()))

        patient_count = instances // 10
        patients = []
        for number in rng.sample(range(10**7), patient_count):
            draw = rng.random()
            if draw < 0.002:
                name = rng.choice(OTHER_SCRIPTS)
            else:
                # About 1 name in 6 has non-ASCII letters, mostly in the family name.
                if draw < 0.12:
                    surname = rng.choice(family_non_ascii)
                    pool = given_non_ascii if rng.random() < 0.5 else given
                else:
                    surname = rng.choices(family, cum_weights=family_cumulative)[0]
                    pool = given_non_ascii if rng.random() < 0.05 else given
                name = f"{surname}^{rng.choice(pool)}"
                if rng.random() < 0.1:
                    name += f"^{rng.choice(given)}"  # a middle name
                if rng.random() < 0.5:
                    name = name.upper()
            if name.isascii():
                charset = ""
            elif rng.random() < 0.5 and _fits_latin1(name):
                charset = "ISO_IR 100"
            else:
                charset = "ISO_IR 192"
            birth = datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randrange(90 * 365))
            patients.append(
                Patient(
                    patient_id=f"P{number:07d}",
                    name=name,
                    birth_date=birth.strftime("%Y%m%d"),
                    sex=rng.choice("MMMMFFFFFO"),
                    charset=charset,
                )
            )

        study_count = 2 * patient_count
        per_study, extra = divmod(instances, study_count)
        studies = []
        for index in range(study_count):
            patient = index // 2
            modality = rng.choices(modalities, cum_weights=modality_cumulative)[0]
            _, _, descriptions, body_parts = MODALITIES[modality]
            day = FIRST_DAY + datetime.timedelta(days=rng.randrange(SPAN_DAYS))
            count = per_study + (index < extra)
            parts = _split(rng, count, min(count, rng.choices((1, 2, 3), (30, 45, 25))[0]))
            study_uid = f"{UID_ROOT}.{seed}.{index}"
            series = []
            for number, size in enumerate(parts, start=1):
                # A PET/CT study: a PET series, then CT series (attenuation correction, low dose).
                series_modality = "CT" if modality == "PT" and number > 1 else modality
                series.append(
                    Series(
                        uid=f"{study_uid}.{number}",
                        number=number,
                        modality=series_modality,
                        description=f"{series_modality} SERIES {number}",
                        instances=size,
                    )
                )
            studies.append(
                Study(
                    patient=patient,
                    uid=study_uid,
                    date=day.strftime("%Y%m%d"),
                    time=f"{rng.randrange(7, 20):02d}{rng.randrange(60):02d}00",
                    accession=f"A{day.year}{index:07d}",
                    description=rng.choice(descriptions),
                    modality=modality,
                    body_part=rng.choice(body_parts),
                    series=series,
                )
            )
            patients[patient].studies.append(index)
        return cls(seed=seed, patients=patients, studies=studies)

    def study_public_id(self, study: Study) -> str:
        return hash_public_id(f"{self.patients[study.patient].patient_id}|{study.uid}")

    def files(self) -> Iterator[bytes]:
        """Every instance as a Part 10 file, study by study, encoded on demand."""
        pixels = bytes(range(128))  # 8x8, 16 bits
        for study_index, study in enumerate(self.studies):
            patient = self.patients[study.patient]
            encoding = "latin-1" if patient.charset == "ISO_IR 100" else "utf-8"
            common = [
                (0x00080020, b"DA", study.date.encode()),
                (0x00080021, b"DA", study.date.encode()),
                (0x00080030, b"TM", study.time.encode()),
                (0x00080050, b"SH", study.accession.encode()),
                (0x00080070, b"LO", b"PHAROS MEDICAL"),
                (0x00080080, b"LO", b"GENERAL HOSPITAL"),
                (0x00080090, b"PN", b"WELBY^MARCUS"),
                (0x00081030, b"LO", study.description.encode()),
                (0x00100010, b"PN", patient.name.encode(encoding)),
                (0x00100020, b"LO", patient.patient_id.encode()),
                (0x00100030, b"DA", patient.birth_date.encode()),
                (0x00100040, b"CS", patient.sex.encode()),
                (0x00180015, b"CS", study.body_part.encode()),
                (0x0020000D, b"UI", study.uid.encode()),
                (0x00200010, b"SH", str(study_index % 100000).encode()),
                (0x00280002, b"US", _us(1)),
                (0x00280004, b"CS", b"MONOCHROME2"),
                (0x00280010, b"US", _us(8)),
                (0x00280011, b"US", _us(8)),
                (0x00280100, b"US", _us(16)),
                (0x00280101, b"US", _us(12)),
                (0x00280102, b"US", _us(11)),
                (0x00280103, b"US", _us(0)),
                (0x7FE00010, b"OW", pixels),
            ]
            if patient.charset:
                common.append((0x00080005, b"CS", patient.charset.encode()))
            for series in study.series:
                sop_class = MODALITIES[series.modality][1]
                series_elements = [
                    *common,
                    (0x00080016, b"UI", sop_class.encode()),
                    (0x00080060, b"CS", series.modality.encode()),
                    (0x0008103E, b"LO", series.description.encode()),
                    (0x0020000E, b"UI", series.uid.encode()),
                    (0x00200011, b"IS", str(series.number).encode()),
                ]
                for number in range(1, series.instances + 1):
                    sop_uid = f"{series.uid}.{number}"
                    elements = [
                        *series_elements,
                        (0x00080018, b"UI", sop_uid.encode()),
                        (0x00200013, b"IS", str(number).encode()),
                    ]
                    yield encode(sop_class, sop_uid, elements)


def _fits_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` as a sum of `parts` positive integers, cut at random."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in itertools.pairwise([0, *cuts, total])]
