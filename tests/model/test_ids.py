from pharos.model.ids import ResourceIds, hash_public_id, is_public_id
from pharos.model.levels import Level


def test_empty_patient_id_hashes_like_orthanc() -> None:
    # SHA-1 of the empty string: the ID Orthanc gives a patient without PatientID.
    assert hash_public_id("") == "da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709"


def test_ids_chain_identifiers_with_pipes() -> None:
    ids = ResourceIds.compute("P", "1.2", "1.2.3", "1.2.3.4")
    assert ids.patient == hash_public_id("P")
    assert ids.study == hash_public_id("P|1.2")
    assert ids.series == hash_public_id("P|1.2|1.2.3")
    assert ids.instance == hash_public_id("P|1.2|1.2.3|1.2.3.4")
    assert all(is_public_id(i) for i in ids.as_tuple())


def test_non_ascii_patient_id_is_hashed_as_utf8() -> None:
    assert hash_public_id("Jérôme") == hash_public_id("J\u00e9r\u00f4me")
    assert hash_public_id("Jérôme") != hash_public_id("Jerome")


def test_is_public_id_rejects_other_shapes() -> None:
    assert not is_public_id("../etc/passwd")
    assert not is_public_id("DA39A3EE-5E6B4B0D-3255BFEF-95601890-AFD80709")
    assert not is_public_id("da39a3ee5e6b4b0d3255bfef95601890afd80709")


def test_levels_parse_orthanc_spellings() -> None:
    assert Level.parse("Patient") is Level.PATIENT
    assert Level.parse("studies") is Level.STUDY
    assert Level.parse("SERIES") is Level.SERIES
    assert Level.parse("Instances") is Level.INSTANCE
    assert Level.STUDY.parent_key == "ParentPatient"
    assert Level.SERIES.children_key == "Instances"
    assert Level.PATIENT.path("x") == "/patients/x"
