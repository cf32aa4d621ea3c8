"""IHE XDM zip: build → parse round trip with real CDAs, and every rejection of a hostile archive."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import stat
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from enrs.standards import cda, ebrim
from enrs.standards.ebrim import Author, SubmissionSet
from enrs.standards.valuesets import Code, lookup
from messagerie.standards import xdm
from messagerie.standards.xdm import XdmDocument, XdmError

KIT_EXAMPLE = Path("/work/shared/standards/ans-cda-kit/examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml")
TEST_INS = "279035121518989"  # ANS test INS (key 89)
INS_TEST_OID = "1.2.250.1.213.1.4.10"
PARIS = dt.timezone(dt.timedelta(hours=1))
PDF = b"%PDF-1.4\n% tiny test pdf\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SUBSET = "IHE_XDM/SUBSET01"


def code(valueset: str, value: str) -> Code:
    found = lookup(valueset, value)
    assert found is not None, (valueset, value)
    return found


AUTHOR = Author(
    person="810002345678^MARTIN^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
    institution="CH Exemple^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000000",
)


def small_cda(
    *,
    type_code: str = "11488-4",
    extension: str = "DOC1",
    traits: bool = True,
) -> bytes:
    """A CDA level 1 built by enrs.standards.cda (PDF body)."""
    when = dt.datetime(2026, 11, 24, 10, 15, tzinfo=PARIS)
    patient = cda.PatientIdentity(
        ins=TEST_INS,
        ins_oid=INS_TEST_OID,
        birth_family_name="PAT-TROIS",
        birth_given_names=("DOMINIQUE", "MARIE-LOUISE"),
        first_given_name="DOMINIQUE",
        sex="F",
        birth_date=dt.date(1979, 3, 28),
        birth_place_insee="51215" if traits else "",
    )
    doctor = cda.Person(idnat_ps="810002345678", family="MARTIN", given="Paul", specialty_code="G15_10/SM26")
    org = cda.Organization(idnat_struct="1750000000", name="CH Exemple")
    spec = cda.CdaLevel1Spec(
        document_id_root="1.2.250.1.999.1.1",
        document_id_extension=extension,
        set_id_root="1.2.250.1.999.1.2",
        set_id_extension=extension,
        version_number=1,
        type_code=code("type_code", type_code),
        title="Compte rendu de consultation",
        effective_time=when,
        confidentiality=code("confidentiality", "N"),
        patient=patient,
        author=doctor,
        author_organization=org,
        custodian=org,
        legal_authenticator=doctor,
        legal_authentication_time=when,
        service_start=when - dt.timedelta(hours=1),
        service_end=when,
        encounter_start=when - dt.timedelta(hours=1),
        encounter_end=when,
        facility_type=code("facility_type", "SA01"),
        practice_setting=code("practice_setting", "ETABLISSEMENT"),
        body=PDF,
    )
    return cda.build_cda_level1(spec)


def submission_for(patient_id: str) -> SubmissionSet:
    return SubmissionSet(
        entry_uuid=ebrim.new_uuid(),
        unique_id="1.2.250.1.999.1.3.42",
        source_id="1.2.250.1.999.1",
        patient_id=patient_id,
        submission_time="20261124091600",
        content_type=code("content_type", "07"),
        authors=(AUTHOR,),
        title="Envoi MSSanté",
    )


def document_for(content: bytes) -> XdmDocument:
    entry = xdm.entry_from_cda(
        content,
        entry_uuid=ebrim.new_uuid(),
        authors=(AUTHOR,),
        legal_authenticator=AUTHOR.person,
    )
    return XdmDocument(content=content, entry=entry)


def make_xdm(*contents: bytes) -> bytes:
    documents = [document_for(content) for content in contents]
    return xdm.build_xdm(
        documents,
        submission_for(documents[0].entry.patient_id),
        sender="paul.martin@ch-exemple.mssante.fr",
        recipients=["jeanne.durand@medecin.mssante.fr"],
        created_at=dt.datetime(2026, 11, 24, 9, 16, tzinfo=dt.UTC),
    )


def rezip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def error_code(data: bytes, **limits: int) -> str:
    with pytest.raises(XdmError) as excinfo:
        xdm.parse_xdm(data, **limits)
    assert excinfo.value.message  # a French message for the user
    return excinfo.value.code


# --- Round trip -----------------------------------------------------------------------------------------


def test_layout_has_index_readme_metadata_and_documents() -> None:
    data = make_xdm(small_cda(extension="A"), small_cda(extension="B"))
    names = list(members_of(data))
    assert names == [
        "INDEX.HTM",
        "README.TXT",
        f"{SUBSET}/METADATA.XML",
        f"{SUBSET}/DOC0001.XML",
        f"{SUBSET}/DOC0002.XML",
    ]
    members = members_of(data)
    assert b"DOC0002.XML" in members["INDEX.HTM"]
    assert b"paul.martin@ch-exemple.mssante.fr" in members["README.TXT"]


def test_index_escapes_what_it_shows() -> None:
    document = document_for(small_cda())
    hostile = XdmDocument(
        content=document.content, entry=dataclasses.replace(document.entry, title="<script>alert(1)</script>")
    )
    data = xdm.build_xdm(
        [hostile],
        submission_for(document.entry.patient_id),
        sender="a&b@ch-exemple.mssante.fr",
        recipients=["<x>@medecin.mssante.fr"],
    )
    index = members_of(data)["INDEX.HTM"]
    assert b"<script>" not in index
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert b"a&amp;b@ch-exemple.mssante.fr" in index
    # The title given by the caller is what the metadata carries.
    assert xdm.parse_xdm(data).documents[0][0].title == "<script>alert(1)</script>"


def test_round_trip_with_the_ans_kit_example() -> None:
    example = KIT_EXAMPLE.read_bytes()
    built = cda.parse_cda(example)
    package = xdm.parse_xdm(make_xdm(example))

    assert len(package.documents) == 1
    entry, content = package.documents[0]
    assert content == example
    assert entry.uri == "DOC0001.XML"
    assert entry.size == len(example)
    assert entry.hash_sha1 == hashlib.sha1(example, usedforsecurity=False).hexdigest()
    assert entry.unique_id == built.document_id == "1.3.6.1.4.1.19376.1.2.20.12345.1.1"
    assert entry.type_code.code == "11502-2"
    assert entry.patient_id == f"{TEST_INS}^^^&{INS_TEST_OID}&ISO^NH"
    assert entry.format_code.code == "urn:ihe:iti:xds-sd:pdf:2008"
    assert entry.healthcare_facility_type.code == "SA07"  # from the CDA's encompassingEncounter
    assert entry.creation_time == "20210401124745"  # 13:47:45+01:00 in UTC
    assert package.submission.patient_id == entry.patient_id
    assert xdm.cda_codes(package) == ["11502-2"]
    assert xdm.has_qualified_ins(package) is True


def test_round_trip_with_built_cdas_and_replacement() -> None:
    first, second = small_cda(extension="A"), small_cda(type_code="11502-2", extension="B")
    documents = [document_for(first), document_for(second)]
    previous = ebrim.new_uuid()
    data = xdm.build_xdm(
        documents,
        submission_for(documents[0].entry.patient_id),
        sender="paul.martin@ch-exemple.mssante.fr",
        recipients=["jeanne.durand@medecin.mssante.fr"],
        replaces={documents[1].entry.entry_uuid: previous},
    )
    package = xdm.parse_xdm(data)
    assert [content for _, content in package.documents] == [first, second]
    assert [entry.uri for entry, _ in package.documents] == ["DOC0001.XML", "DOC0002.XML"]
    assert package.replaces == {documents[1].entry.entry_uuid: previous}
    assert xdm.cda_codes(package) == ["11488-4", "11502-2"]
    assert xdm.has_qualified_ins(package) is True


def test_ins_without_all_traits_is_not_qualified() -> None:
    package = xdm.parse_xdm(make_xdm(small_cda(traits=False)))
    assert xdm.cda_codes(package) == ["11488-4"]
    assert xdm.has_qualified_ins(package) is False


def test_entry_from_cda_rejects_unreadable_xml() -> None:
    with pytest.raises(XdmError) as excinfo:
        xdm.entry_from_cda(b"<not-a-cda/>", entry_uuid=ebrim.new_uuid())
    assert excinfo.value.code == "bad_cda"


def test_build_needs_a_document() -> None:
    with pytest.raises(XdmError):
        xdm.build_xdm([], submission_for("x"), sender="a@b.mssante.fr", recipients=[])


# --- Rejections -----------------------------------------------------------------------------------------


def test_not_a_zip() -> None:
    assert error_code(b"%PDF-1.4 this is not a zip") == "not_zip"
    assert error_code(b"PK\x03\x04garbage") == "not_zip"
    assert error_code(b"") == "not_zip"
    assert error_code("PK not bytes") == "not_zip"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "IHE_XDM/SUBSET01/../../evil.txt",
        "/etc/passwd",
        "C:/Windows/evil.txt",
        "IHE_XDM\\SUBSET01\\DOC0001.XML",
    ],
)
def test_path_traversal_names(name: str) -> None:
    members = members_of(make_xdm(small_cda()))
    members[name] = b"evil"
    assert error_code(rezip(members)) == "path_traversal"


def test_symlink_member() -> None:
    members = members_of(make_xdm(small_cda()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("IHE_XDM/SUBSET01/LINK")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    assert error_code(buffer.getvalue()) == "symlink"


def test_too_many_members() -> None:
    members = members_of(make_xdm(small_cda()))
    for index in range(10):
        members[f"EXTRA{index}.TXT"] = b"x"
    data = rezip(members)
    assert error_code(data, max_members=10) == "too_many_members"
    assert len(xdm.parse_xdm(data, max_members=20).documents) == 1


def test_total_size_limit() -> None:
    data = make_xdm(small_cda())
    total = sum(len(content) for content in members_of(data).values())
    assert error_code(data, max_total_bytes=total - 1) == "too_large"
    assert len(xdm.parse_xdm(data, max_total_bytes=total).documents) == 1


def _zero_bomb(size: int) -> bytes:
    """A zip holding `size` zero bytes, written in 1 MiB chunks (never the whole payload in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(f"{SUBSET}/DOC0001.XML", "w", force_zip64=True) as stream:
            chunk = bytes(1024 * 1024)
            for _ in range(size // len(chunk)):
                stream.write(chunk)
        archive.writestr(f"{SUBSET}/METADATA.XML", b"<x/>")
    return buffer.getvalue()


def test_one_gigabyte_zip_bomb_is_refused_without_inflating_it() -> None:
    bomb = _zero_bomb(1024 * 1024 * 1024)
    assert len(bomb) < 5 * 1024 * 1024
    tracemalloc.start()
    try:
        assert error_code(bomb, max_total_bytes=2 * 1024 * 1024 * 1024) == "bomb"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024


def _patch_declared_size(data: bytes, name: str, fake_size: int) -> bytes:
    """Rewrite the uncompressed size announced for `name` in its local and central headers."""
    patched = bytearray(data)
    encoded = name.encode()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    local = info.header_offset
    assert patched[local : local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", patched, local + 22, fake_size)
    central = patched.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", patched, central + 28)[0]
        if bytes(patched[central + 46 : central + 46 + name_len]) == encoded:
            struct.pack_into("<I", patched, central + 24, fake_size)
            return bytes(patched)
        central = patched.find(b"PK\x01\x02", central + 4)
    raise AssertionError(f"{name} not found in the central directory")


def test_lying_size_headers_do_not_let_a_bomb_through() -> None:
    """Headers announcing a tiny member: reading is still bounded and the member is refused."""
    members = members_of(make_xdm(small_cda()))
    members[f"{SUBSET}/PAD.BIN"] = bytes(8 * 1024 * 1024)
    data = _patch_declared_size(rezip(members), f"{SUBSET}/PAD.BIN", 1000)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.getinfo(f"{SUBSET}/PAD.BIN").file_size == 1000  # the header check sees nothing
    assert error_code(data) == "corrupt"  # zipfile stops at the announced size, then the CRC fails


def test_missing_metadata() -> None:
    members = members_of(make_xdm(small_cda()))
    del members[f"{SUBSET}/METADATA.XML"]
    assert error_code(rezip(members)) == "missing_metadata"


@pytest.mark.parametrize(
    "metadata",
    [
        b"<not closed",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        b"<x/>",
    ],
)
def test_bad_metadata(metadata: bytes) -> None:
    members = members_of(make_xdm(small_cda()))
    members[f"{SUBSET}/METADATA.XML"] = metadata
    assert error_code(rezip(members)) == "bad_metadata"


def test_missing_document() -> None:
    members = members_of(make_xdm(small_cda()))
    del members[f"{SUBSET}/DOC0001.XML"]
    assert error_code(rezip(members)) == "missing_document"


def test_hash_mismatch() -> None:
    members = members_of(make_xdm(small_cda()))
    original = members[f"{SUBSET}/DOC0001.XML"]
    members[f"{SUBSET}/DOC0001.XML"] = original.replace(b"PAT-TROIS", b"PAT-TRAIS")  # same size
    assert error_code(rezip(members)) == "hash_mismatch"


def test_size_mismatch() -> None:
    members = members_of(make_xdm(small_cda()))
    members[f"{SUBSET}/DOC0001.XML"] += b"\n"
    assert error_code(rezip(members)) == "size_mismatch"


def test_uri_escaping_the_subset_is_refused() -> None:
    document = document_for(small_cda())
    members = members_of(make_xdm(document.content))
    submission, entries, _ = ebrim.parse_submit_objects_request(members[f"{SUBSET}/METADATA.XML"])
    tampered = [dataclasses.replace(entries[0], uri="../README.TXT")]
    members[f"{SUBSET}/METADATA.XML"] = ebrim.to_bytes(
        ebrim.build_submit_objects_request(submission, tampered)
    )
    assert error_code(rezip(members)) == "path_traversal"


def test_duplicate_member_names() -> None:
    members = members_of(make_xdm(small_cda()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(f"{SUBSET}/doc0001.xml", b"other")  # same name but for case: ambiguous
    assert error_code(buffer.getvalue()) == "duplicate_member"
