"""MSSanté MIME: header rules, the shape a receiver parses, addresses, and robust reading."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import random
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from messagerie.standards import xdm
from messagerie.standards.mime import (
    Attachment,
    MimeError,
    build_message,
    is_mssante_address,
    is_patient_address,
    parse_message,
    sanitize_filename,
    xdm_attachment,
    xdm_subject,
)
from tests.messagerie.test_xdm import KIT_EXAMPLE, PDF, document_for, make_xdm, small_cda, submission_for

SENDER = "paul.martin@ch-exemple.mssante.fr"
PRO = "jeanne.durand@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"  # ANS test INS (key 89)
NIL = "ENRS-NIL-0001"
WHEN = dt.datetime(2026, 11, 24, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=1)))
RECEIVER = BytesParser(policy=policy.default)


def build(**overrides: object) -> EmailMessage:
    values: dict[str, object] = {
        "sender": SENDER,
        "to": [PRO],
        "subject": "Compte rendu de consultation — Mme PAT-TROIS",
        "message_id": "<20261124101500.1@ch-exemple.mssante.fr>",
        "date": WHEN,
        "nil": NIL,
        "text": "Bonjour,\nvoici le compte rendu.\nCordialement, Dr Martin",
    }
    values.update(overrides)
    return build_message(**values)  # type: ignore[arg-type]


def received(msg: EmailMessage) -> EmailMessage:
    """What a receiver sees: the wire bytes parsed back with the modern policy."""
    parsed = RECEIVER.parsebytes(bytes(msg))
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- Header rules ---------------------------------------------------------------------------------------


def test_nil_on_every_message_and_no_cda_headers_without_xdm() -> None:
    msg = received(build())
    assert msg["X-MSS-NIL"] == NIL
    assert msg["X-MSS-CODECDA"] is None
    assert msg["X-MSS-INS"] is None
    assert msg["X-MSS-MES"] is None
    assert msg["Message-ID"] == "<20261124101500.1@ch-exemple.mssante.fr>"
    assert msg["Subject"] == "Compte rendu de consultation — Mme PAT-TROIS"
    assert msg["Disposition-Notification-To"] is None


def test_codecda_and_ins_from_the_attached_xdm() -> None:
    kit = received(build(xdm_zip=make_xdm(KIT_EXAMPLE.read_bytes())))
    assert kit["X-MSS-CODECDA"] == "11502-2"
    assert kit["X-MSS-INS"] == "O"
    assert kit["X-MSS-NIL"] == NIL

    two = received(build(xdm_zip=make_xdm(small_cda(), small_cda(type_code="11502-2", extension="B"))))
    assert two["X-MSS-CODECDA"] == "11488-4,11502-2"

    unqualified = received(build(xdm_zip=make_xdm(small_cda(traits=False))))
    assert unqualified["X-MSS-CODECDA"] == "11488-4"
    assert unqualified["X-MSS-INS"] == "N"


def test_no_cda_headers_when_the_xdm_holds_no_cda() -> None:
    document = document_for(small_cda())
    pdf_only = dataclasses.replace(
        document, content=PDF, entry=dataclasses.replace(document.entry, mime_type="application/pdf")
    )
    archive = xdm.build_xdm(
        [pdf_only], submission_for(document.entry.patient_id), sender=SENDER, recipients=[PRO]
    )
    msg = received(build(xdm_zip=archive))
    assert msg["X-MSS-CODECDA"] is None
    assert msg["X-MSS-INS"] is None
    assert msg["X-MSS-NIL"] == NIL
    assert xdm_attachment(parse_message(bytes(msg))) is not None


def test_invalid_xdm_is_refused() -> None:
    with pytest.raises(MimeError) as excinfo:
        build(xdm_zip=b"not a zip")
    assert excinfo.value.code == "bad_xdm"


def test_mes_fin_only_to_patients_who_must_not_reply() -> None:
    assert received(build(to=[PATIENT], patient_may_reply=False))["X-MSS-MES"] == "FIN"
    assert received(build(to=[PRO], cc=[PATIENT], patient_may_reply=False))["X-MSS-MES"] == "FIN"
    assert received(build(to=[PATIENT], patient_may_reply=True))["X-MSS-MES"] is None
    assert received(build(to=[PRO], patient_may_reply=False))["X-MSS-MES"] is None
    # A patient-domain address whose INS key is wrong is not a patient address.
    assert (
        received(build(to=["279035121518988@patient.mssante.fr"], patient_may_reply=False))["X-MSS-MES"]
        is None
    )


def test_xdm_subject() -> None:
    subject = xdm_subject("CR d'imagerie médicale", "Pat-Trois", "Dominique", dt.date(1979, 3, 28))
    assert subject == "XDM/1.0/DDM+CR d'imagerie médicale PAT-TROIS Dominique 28/03/1979"
    assert received(build(subject=subject))["Subject"] == subject


def test_disposition_notification_to_when_asked() -> None:
    msg = received(build(disposition_notification_to=SENDER))
    assert msg["Disposition-Notification-To"] == SENDER


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"subject": "Objet\r\nBcc: victime@example.org"}, "bad_header"),
        ({"to": ["pas une adresse"]}, "bad_address"),
        ({"to": []}, "no_recipient"),
        ({"sender": "a@b@c.fr"}, "bad_address"),
        ({"nil": "  "}, "missing_nil"),
        ({"nil": "X\nY"}, "bad_header"),
        ({"message_id": "sans-chevrons@x.fr"}, "bad_message_id"),
        ({"date": dt.datetime(2026, 11, 24, 10, 15)}, "bad_date"),
        ({"attachments": [Attachment("a.pdf", "pdf", PDF)]}, "bad_attachment"),
        ({"disposition_notification_to": "nope"}, "bad_address"),
    ],
)
def test_bad_input_is_refused_with_a_code(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(MimeError) as excinfo:
        build(**overrides)
    assert excinfo.value.code == code
    assert excinfo.value.message


# --- MIME shape as a receiver parses it -----------------------------------------------------------------


def test_shape_text_html_pdf_then_xdm_zip() -> None:
    archive = make_xdm(KIT_EXAMPLE.read_bytes())
    msg = build(
        to=[PRO, PATIENT],
        cc=["secretariat@ch-exemple.mssante.fr"],
        html="<p>Bonjour, voici le compte rendu.</p>",
        attachments=[Attachment("CR consultation été.pdf", "application/pdf", PDF)],
        xdm_zip=archive,
        disposition_notification_to=SENDER,
    )
    wire = bytes(msg)
    assert b"\r\n" in wire  # SMTP policy: CRLF line endings
    parsed = RECEIVER.parsebytes(wire)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/mixed"
    assert parsed["MIME-Version"] == "1.0"
    assert [a.addr_spec for a in parsed["To"].addresses] == [PRO, PATIENT]
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["secretariat@ch-exemple.mssante.fr"]

    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "multipart/alternative",
        "application/pdf",
        "application/zip",
    ]
    body = parts[0]
    assert isinstance(body, EmailMessage)
    plain = body.get_body(preferencelist=("plain",))
    html = body.get_body(preferencelist=("html",))
    assert plain is not None
    assert "voici le compte rendu" in plain.get_content()
    assert html is not None
    assert "<p>Bonjour" in html.get_content()

    pdf, zipped = parts[1], parts[2]
    assert pdf.get_filename() == "CR consultation été.pdf"
    assert pdf["Content-Transfer-Encoding"] == "base64"
    assert pdf.get_content() == PDF
    assert zipped.get_filename() == "IHE_XDM.zip"
    assert zipped.get_param("name") == "IHE_XDM.zip"
    assert zipped.get_content_disposition() == "attachment"
    assert zipped["Content-Transfer-Encoding"] == "base64"
    assert zipped.get_content() == archive
    # The wire really carries base64 of the archive.
    payload = zipped.get_payload()
    assert isinstance(payload, str)
    assert base64.b64decode(payload) == archive
    assert len(xdm.parse_xdm(zipped.get_content()).documents) == 1


def test_parse_message_round_trip() -> None:
    archive = make_xdm(small_cda())
    raw = bytes(
        build(
            to=[PRO],
            cc=[PATIENT],
            html="<p>é</p>",
            attachments=[Attachment("../../etc/CR.pdf", "application/pdf", PDF)],
            xdm_zip=archive,
            disposition_notification_to=SENDER,
        )
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "<20261124101500.1@ch-exemple.mssante.fr>"
    assert parsed.subject == "Compte rendu de consultation — Mme PAT-TROIS"
    assert parsed.from_addr == SENDER
    assert parsed.to == [PRO]
    assert parsed.cc == [PATIENT]
    assert parsed.date == WHEN
    assert parsed.text.startswith("Bonjour,\nvoici le compte rendu.")
    assert parsed.html.strip() == "<p>é</p>"
    assert parsed.disposition_notification_to == SENDER
    assert parsed.header("X-MSS-NIL") == NIL
    assert parsed.header("x-mss-codecda") == "11488-4"
    assert parsed.is_report is False
    assert parsed.report_kind is None
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("CR.pdf", "application/pdf"),
        ("IHE_XDM.zip", "application/zip"),
    ]
    assert parsed.attachments[0].data == PDF
    found = xdm_attachment(parsed)
    assert found is not None
    assert found.data == archive


# --- Addresses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (PATIENT, True),
        ("146026322000196@patient.mssante.fr", True),  # hl7v2-cda-IG example
        ("279035121518989@PATIENT.MSSANTE.FR", True),
        ("279035121518988@patient.mssante.fr", False),  # wrong key
        ("27903512151898@patient.mssante.fr", False),  # 14 digits
        ("279035121518989@medecin.mssante.fr", False),
        ("279035121518989@patient.mssante.fr.evil.org", False),
        ("jeanne.durand@patient.mssante.fr", False),
        ("", False),
        (" 279035121518989@patient.mssante.fr", False),
    ],
)
def test_is_patient_address(address: str, expected: bool) -> None:
    assert is_patient_address(address) is expected


def test_is_mssante_address() -> None:
    trusted = ["medecin.mssante.fr", "ch-exemple.mssante.fr", ".groupe.mssante.fr"]
    assert is_mssante_address(PRO, trusted)
    assert is_mssante_address("Jeanne.Durand@MEDECIN.mssante.fr", trusted)
    assert is_mssante_address("x.y@site1.groupe.mssante.fr", trusted)
    assert not is_mssante_address("x.y@groupe.mssante.fr", trusted)  # the dot entry means sub-domains
    assert not is_mssante_address("x.y@pro.mssante.fr", trusted)  # not on the list
    assert not is_mssante_address("x.y@evilmedecin.mssante.fr", trusted)
    assert not is_mssante_address("jeanne@gmail.com", trusted)
    assert not is_mssante_address("pas une adresse", trusted)
    assert not is_mssante_address(PRO, [])


# --- Robust reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_name", "content_type", "expected"),
    [
        ("../../etc/passwd", "application/pdf", "passwd"),
        ("C:\\Users\\x\\rapport.pdf", "application/pdf", "rapport.pdf"),
        ("a\x00b\x07c.pdf", "application/pdf", "a_b_c.pdf"),
        ('<script>"x"|?*.pdf', "application/pdf", "_script__x____.pdf"),
        ("...", "application/pdf", "piece-jointe-1.pdf"),
        (None, "application/zip", "piece-jointe-1.zip"),
        (None, "application/x-unknown", "piece-jointe-1.bin"),
        ("x" * 300 + ".pdf", "application/pdf", "x" * 146 + ".pdf"),
    ],
)
def test_sanitize_filename(raw_name: str | None, content_type: str, expected: str) -> None:
    assert sanitize_filename(raw_name, content_type=content_type) == expected


HOSTILE = b"""From: =?utf-8?q?broken <not-an-address
To: a@b.fr,,,, <<<>>>, "x" <c@d.fr>
Subject: =?x-unknown?q?abc?= \xff\xfe
Date: not a date
Message-ID: <x@y>
Disposition-Notification-To: <<<
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BOUND"

--BOUND
Content-Type: text/plain; charset="x-no-such-charset"
Content-Transfer-Encoding: base64

!!!not base64!!!
--BOUND
Content-Type: application/pdf; name="../../../evil.pdf"
Content-Disposition: attachment; filename*=utf-8''%2E%2E%2Fevil%00.pdf
Content-Transfer-Encoding: base64

JVBERi0=
--BOUND
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

SGVsbG8
--BOUND
"""


def test_hostile_message_is_read_without_raising() -> None:
    parsed = parse_message(HOSTILE)
    assert parsed.message_id == "<x@y>"
    assert parsed.date is None
    assert "c@d.fr" in parsed.to
    assert parsed.disposition_notification_to == ""
    names = [a.filename for a in parsed.attachments]
    assert all("/" not in name and "\\" not in name and "\x00" not in name for name in names)
    assert names[0] == "evil_.pdf"
    assert parsed.attachments[0].data == b"%PDF-"
    assert names[1] == "piece-jointe-2.bin"
    assert parsed.defects > 0


def test_garbage_never_raises_anything_but_mime_error() -> None:
    rng = random.Random(20261124)
    seeds = [b"", b"\x00" * 100, b"From: x\r\n\r\n", HOSTILE[: len(HOSTILE) // 2], bytes(build())[:700]]
    samples = seeds + [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000))) for _ in range(200)]
    for sample in samples:
        parsed = parse_message(sample)
        assert isinstance(parsed.attachments, list)
    # Mutations of a real message: flip bytes here and there.
    valid = bytearray(bytes(build(attachments=[Attachment("a.pdf", "application/pdf", PDF)])))
    for _ in range(100):
        mutated = bytearray(valid)
        for _ in range(20):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        parse_message(bytes(mutated))


def test_documented_failures() -> None:
    with pytest.raises(MimeError) as too_large:
        parse_message(b"x" * 101, max_bytes=100)
    assert too_large.value.code == "too_large"
    with pytest.raises(MimeError) as not_bytes:
        parse_message("texte")  # type: ignore[arg-type]
    assert not_bytes.value.code == "not_bytes"
