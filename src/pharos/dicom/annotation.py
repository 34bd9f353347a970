"""Text burnt into rendered images, as WADO-URI's `annotation` parameter asks (PS3.18 9.1.2.1.8):
"patient" (name, ID, birth date, sex) in the upper left corner, "technique" (modality, study
date, series, instance number, window) in the lower left one. What the text holds is the
server's choice in the standard; these are the lines a reading room expects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

KINDS = ("patient", "technique")
_MARGIN = 4


def annotate(image: np.ndarray, ds: Dataset, kinds: Sequence[str], window: str = "") -> np.ndarray:
    """`image` (8-bit grayscale or RGB) with the lines of `kinds`; `window`: the window
    used ("C/W"), for the technique lines."""
    if not kinds:
        return image
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    size = max(10, min(canvas.width, canvas.height) // 24)
    font = ImageFont.load_default(size=size)
    white = 255 if canvas.mode == "L" else (255, 255, 255)
    black = 0 if canvas.mode == "L" else (0, 0, 0)
    step = size + 2
    if "patient" in kinds:
        for row, line in enumerate(_patient_lines(ds)):
            position = (_MARGIN, _MARGIN + row * step)
            draw.text(position, line, fill=white, font=font, stroke_width=1, stroke_fill=black)
    if "technique" in kinds:
        lines = _technique_lines(ds, window)
        top = canvas.height - _MARGIN - len(lines) * step
        for row, line in enumerate(lines):
            position = (_MARGIN, top + row * step)
            draw.text(position, line, fill=white, font=font, stroke_width=1, stroke_fill=black)
    return np.asarray(canvas)


def _patient_lines(ds: Dataset) -> list[str]:
    name = str(ds.get("PatientName", "") or "").split("=")[0].replace("^", " ").strip()
    born = _date(ds.get("PatientBirthDate"))
    sex = str(ds.get("PatientSex", "") or "")
    details = " ".join(part for part in (born, sex) if part)
    return [line for line in (name, str(ds.get("PatientID", "") or ""), details) if line.strip()]


def _technique_lines(ds: Dataset, window: str) -> list[str]:
    modality = str(ds.get("Modality", "") or "")
    study = " ".join(part for part in (modality, _date(ds.get("StudyDate"))) if part)
    number = ds.get("SeriesNumber")
    description = str(ds.get("SeriesDescription", "") or "")
    series = " ".join(
        part for part in (f"Se {number}" if number not in (None, "") else "", description) if part
    )
    instance = ds.get("InstanceNumber")
    image = f"Im {instance}" if instance not in (None, "") else ""
    if window:
        image = " ".join(part for part in (image, f"W {window}") if part)
    return [line for line in (study, series, image) if line]


def _date(value: object) -> str:
    """YYYYMMDD as YYYY-MM-DD; anything else as it is."""
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text
