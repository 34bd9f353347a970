"""The main DICOM tags of each level: indexed in the database and shown as `MainDicomTags`.

The lists are Orthanc 1.10's (the default set, unchanged since Orthanc 1.4.2), so the JSON of
a resource has the same keys in Pharos and in Orthanc.
"""

from __future__ import annotations

from dataclasses import dataclass

from pharos.model.levels import Level


@dataclass(frozen=True, slots=True)
class MainTag:
    tag: int  # (group << 16) | element
    keyword: str  # DICOM keyword, also the key in Orthanc's JSON
    column: str  # column name in the index

    @property
    def orthanc_key(self) -> str:
        """'0010,0010' as Orthanc writes tags."""
        return f"{self.tag >> 16:04x},{self.tag & 0xFFFF:04x}"


def _t(group: int, element: int, keyword: str, column: str) -> MainTag:
    return MainTag((group << 16) | element, keyword, column)


PATIENT_TAGS: tuple[MainTag, ...] = (
    _t(0x0010, 0x0010, "PatientName", "patient_name"),
    _t(0x0010, 0x0020, "PatientID", "patient_id"),
    _t(0x0010, 0x0030, "PatientBirthDate", "patient_birth_date"),
    _t(0x0010, 0x0040, "PatientSex", "patient_sex"),
    _t(0x0010, 0x1000, "OtherPatientIDs", "other_patient_ids"),
)

STUDY_TAGS: tuple[MainTag, ...] = (
    _t(0x0008, 0x0020, "StudyDate", "study_date"),
    _t(0x0008, 0x0030, "StudyTime", "study_time"),
    _t(0x0020, 0x0010, "StudyID", "study_id"),
    _t(0x0008, 0x1030, "StudyDescription", "study_description"),
    _t(0x0008, 0x0050, "AccessionNumber", "accession_number"),
    _t(0x0020, 0x000D, "StudyInstanceUID", "study_instance_uid"),
    _t(0x0032, 0x1060, "RequestedProcedureDescription", "requested_procedure_description"),
    _t(0x0008, 0x0080, "InstitutionName", "institution_name"),
    _t(0x0032, 0x1032, "RequestingPhysician", "requesting_physician"),
    _t(0x0008, 0x0090, "ReferringPhysicianName", "referring_physician_name"),
)

SERIES_TAGS: tuple[MainTag, ...] = (
    _t(0x0008, 0x0021, "SeriesDate", "series_date"),
    _t(0x0008, 0x0031, "SeriesTime", "series_time"),
    _t(0x0008, 0x0060, "Modality", "modality"),
    _t(0x0008, 0x0070, "Manufacturer", "manufacturer"),
    _t(0x0008, 0x1010, "StationName", "station_name"),
    _t(0x0008, 0x103E, "SeriesDescription", "series_description"),
    _t(0x0018, 0x0015, "BodyPartExamined", "body_part_examined"),
    _t(0x0018, 0x0024, "SequenceName", "sequence_name"),
    _t(0x0018, 0x1030, "ProtocolName", "protocol_name"),
    _t(0x0020, 0x0011, "SeriesNumber", "series_number"),
    _t(0x0018, 0x1090, "CardiacNumberOfImages", "cardiac_number_of_images"),
    _t(0x0020, 0x1002, "ImagesInAcquisition", "images_in_acquisition"),
    _t(0x0020, 0x0105, "NumberOfTemporalPositions", "number_of_temporal_positions"),
    _t(0x0054, 0x0081, "NumberOfSlices", "number_of_slices"),
    _t(0x0054, 0x0101, "NumberOfTimeSlices", "number_of_time_slices"),
    _t(0x0020, 0x000E, "SeriesInstanceUID", "series_instance_uid"),
    _t(0x0020, 0x0037, "ImageOrientationPatient", "image_orientation_patient"),
    _t(0x0008, 0x0064, "SeriesType", "series_type"),
    _t(0x0008, 0x1070, "OperatorsName", "operators_name"),
    _t(0x0040, 0x0254, "PerformedProcedureStepDescription", "performed_procedure_step_description"),
    _t(
        0x0018,
        0x1400,
        "AcquisitionDeviceProcessingDescription",
        "acquisition_device_processing_description",
    ),
    _t(0x0018, 0x0010, "ContrastBolusAgent", "contrast_bolus_agent"),
)

INSTANCE_TAGS: tuple[MainTag, ...] = (
    _t(0x0008, 0x0012, "InstanceCreationDate", "instance_creation_date"),
    _t(0x0008, 0x0013, "InstanceCreationTime", "instance_creation_time"),
    _t(0x0020, 0x0012, "AcquisitionNumber", "acquisition_number"),
    _t(0x0054, 0x1330, "ImageIndex", "image_index"),
    _t(0x0020, 0x0013, "InstanceNumber", "instance_number"),
    _t(0x0028, 0x0008, "NumberOfFrames", "number_of_frames"),
    _t(0x0020, 0x9128, "TemporalPositionIdentifier", "temporal_position_identifier"),
    _t(0x0008, 0x0018, "SOPInstanceUID", "sop_instance_uid"),
    _t(0x0020, 0x0032, "ImagePositionPatient", "image_position_patient"),
    _t(0x0020, 0x4000, "ImageComments", "image_comments"),
    _t(0x0020, 0x0037, "ImageOrientationPatient", "image_orientation_patient"),
)

MAIN_TAGS: dict[Level, tuple[MainTag, ...]] = {
    Level.PATIENT: PATIENT_TAGS,
    Level.STUDY: STUDY_TAGS,
    Level.SERIES: SERIES_TAGS,
    Level.INSTANCE: INSTANCE_TAGS,
}

# Other tags read from every stored file, for metadata and series completeness.
SOP_CLASS_UID = 0x00080016
SPECIFIC_CHARACTER_SET = 0x00080005

# Every tag whose value the store path needs.
ALL_STORED_TAGS: frozenset[int] = frozenset(
    {t.tag for tags in MAIN_TAGS.values() for t in tags} | {SOP_CLASS_UID, SPECIFIC_CHARACTER_SET}
)
