"""DSN (RFC 3464) and MDN (RFC 8098, MSSanté IG): build → parse, hand-written reports, MDN rules."""

from __future__ import annotations

import datetime as dt
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest

from messagerie.standards.mime import Attachment, build_message, parse_message
from messagerie.standards.reports import (
    DsnRecipient,
    ReportError,
    build_dsn,
    build_mdn,
    parse_disposition,
    parse_report,
    should_send_mdn,
)
from tests.messagerie.test_xdm import PDF

SENDER = "paul.martin@ch-exemple.mssante.fr"
RECIPIENT = "servicey_auto@chb.mssante.fr"
ORIGINAL_ID = "<20261124101500.1@ch-exemple.mssante.fr>"
SUBJECT = "XDM/1.0/DDM+CR d'imagerie médicale PAT-TROIS Dominique 28/03/1979"
WHEN = dt.datetime(2026, 11, 24, 10, 20, tzinfo=dt.UTC)
RECEIVER = BytesParser(policy=policy.default)


def parts_of(msg: Message) -> list[EmailMessage]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    assert all(isinstance(part, EmailMessage) for part in payload)
    return [part for part in payload if isinstance(part, EmailMessage)]


def original(*, dnt: str | None = SENDER, **extra_headers: str) -> bytes:
    msg = build_message(
        sender=SENDER,
        to=[RECIPIENT],
        subject=SUBJECT,
        message_id=ORIGINAL_ID,
        date=WHEN - dt.timedelta(minutes=5),
        nil="ENRS-NIL-0001",
        text="Veuillez trouver le compte rendu.",
        attachments=[Attachment("cr.pdf", "application/pdf", PDF)],
        disposition_notification_to=dnt,
    )
    for name, value in extra_headers.items():
        msg[name.replace("_", "-")] = value
    return bytes(msg)


def mdn(**overrides: object) -> EmailMessage:
    values: dict[str, object] = {
        "original": original(),
        "reporting_ua": "chb.mssante.fr; ENRS",
        "final_recipient": RECIPIENT,
        "from_addr": RECIPIENT,
        "message_id": "<mdn.1@chb.mssante.fr>",
        "date": WHEN,
    }
    values.update(overrides)
    return build_mdn(**values)  # type: ignore[arg-type]


# --- MDN ------------------------------------------------------------------------------------------------


def test_mdn_success_shape_and_round_trip() -> None:
    msg = mdn(original_recipient=RECIPIENT)
    wire = bytes(msg)
    received = RECEIVER.parsebytes(wire)
    assert received.get_content_type() == "multipart/report"
    assert received.get_param("report-type") == "disposition-notification"
    assert received["To"] == SENDER  # the Disposition-Notification-To of the original
    assert received["Subject"] == SUBJECT
    assert received["In-Reply-To"] == ORIGINAL_ID
    assert received["Auto-Submitted"] == "auto-replied"
    parts = parts_of(received)
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/disposition-notification",
        "message/rfc822",
    ]
    assert "traité" in parts[0].get_content()
    assert b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n" in wire
    assert b"Original-Recipient: rfc822;" + RECIPIENT.encode() in wire
    assert b"Final-Recipient: rfc822;" + RECIPIENT.encode() in wire
    assert b"Original-Message-ID: " + ORIGINAL_ID.encode() in wire
    assert b"Reporting-UA: chb.mssante.fr; ENRS" in wire
    inner = parts_of(parts[2])[0]
    assert inner["Message-ID"] == ORIGINAL_ID  # the whole original comes back as the third part

    report = parse_report(wire)
    assert report.kind == "mdn"
    assert report.original_message_id == ORIGINAL_ID
    assert report.disposition_mode == "automatic-action/MDN-sent-automatically"
    assert report.reporting == "chb.mssante.fr; ENRS"
    [rcpt] = report.per_recipient
    assert (rcpt.recipient, rcpt.action, rcpt.status, rcpt.diagnostic) == (RECIPIENT, "processed", "", "")
    assert rcpt.original_recipient == RECIPIENT
    assert rcpt.failed is False

    parsed = parse_message(wire)
    assert parsed.is_report is True
    assert parsed.report_kind == "mdn"


def test_mdn_integration_error() -> None:
    msg = mdn(error=("902", "Identifiant de patient inconnu"))
    wire = bytes(msg)
    assert (
        b"Disposition: automatic-action/MDN-sent-automatically; "
        b"processed/Error: 902^Identifiant de patient inconnu\r\n" in wire
    )
    received = RECEIVER.parsebytes(wire)
    assert received["Subject"] == f"[KO Intégration système !][902] {SUBJECT}"
    human = parts_of(received)[0].get_content()
    assert "902^Identifiant de patient inconnu" in human

    report = parse_report(wire)
    [rcpt] = report.per_recipient
    assert rcpt.action == "processed"
    assert rcpt.status == "error"
    assert rcpt.error_code == "902"
    assert rcpt.error_label == "Identifiant de patient inconnu"
    assert rcpt.failed is True


def test_mdn_error_label_is_folded_to_ascii_in_the_machine_part() -> None:
    wire = bytes(mdn(error=("900", "Version non supportée")))
    assert b"processed/Error: 900^Version non supportee" in wire
    [rcpt] = parse_report(wire).per_recipient
    assert (rcpt.error_code, rcpt.error_label) == ("900", "Version non supportee")


def test_mdn_can_reattach_the_original_attachments() -> None:
    wire = bytes(mdn(reattach_attachments=True, error=("902", "Identifiant de patient inconnu")))
    parts = parts_of(RECEIVER.parsebytes(wire))
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/disposition-notification",
        "message/rfc822",
        "application/pdf",
    ]
    assert parts[3].get_filename() == "cr.pdf"
    assert parts[3]["Content-Transfer-Encoding"] == "base64"
    assert parts[3].get_content() == PDF
    assert parse_report(wire).per_recipient[0].error_code == "902"


def test_mdn_manual_displayed_with_headers_only() -> None:
    wire = bytes(mdn(manual=True, disposition_type="displayed", include_original=False))
    assert b"Disposition: manual-action/MDN-sent-manually; displayed" in wire
    received = RECEIVER.parsebytes(wire)
    assert parts_of(received)[2].get_content_type() == "text/rfc822-headers"
    report = parse_report(wire)
    assert report.disposition_mode == "manual-action/MDN-sent-manually"
    assert report.per_recipient[0].action == "displayed"
    assert report.original_message_id == ORIGINAL_ID


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"original": original(dnt=None)}, "no_request"),
        ({"disposition_type": "read"}, "bad_disposition"),
        ({"final_recipient": "nope"}, "bad_address"),
        ({"error": ("90 2", "x")}, "bad_error"),
        ({"reporting_ua": "a\r\nb"}, "bad_header"),
        ({"message_id": "x"}, "bad_message_id"),
    ],
)
def test_mdn_bad_input(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(ReportError) as excinfo:
        mdn(**overrides)
    assert excinfo.value.code == code


# Shaped like the MSSanté IG example (struct-msg-mdn.md), with our own fictitious values.
IG_STYLE_MDN = b"""Date: Tue, 24 Nov 2026 00:19:00 +0100
From: service_auto@chx.mssante.fr
Message-ID: <20261124001900.777@chx.mssante.fr>
Subject: [KO Int=?utf-8?q?=C3=A9?=gration syst=?utf-8?q?=C3=A8?=me !][902] XDM/1.0/DDM+ECHOGRAPHIE
To: service@chy.mssante.fr
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
 boundary="AAA111.222"

--AAA111.222
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: 8bit

Le document n'a pas pu etre integre.

--AAA111.222
Content-Type: message/disposition-notification

Original-Recipient: rfc822;service_auto@chx.mssante.fr
Final-Recipient: rfc822;service_auto@chx.mssante.fr
Original-Message-ID: <20261123230100.555@chy.mssante.fr>
Disposition:automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant de patient \
inconnu^messageErrorCondition| E^Error^errorSeverity

--AAA111.222
Content-Type: message/rfc822

Message-ID: <20261123230100.555@chy.mssante.fr>
Subject: original

corps
--AAA111.222--
"""


def test_parse_ig_style_mdn() -> None:
    report = parse_report(IG_STYLE_MDN)
    assert report.kind == "mdn"
    assert report.original_message_id == "<20261123230100.555@chy.mssante.fr>"
    [rcpt] = report.per_recipient
    assert rcpt.recipient == "service_auto@chx.mssante.fr"
    assert rcpt.original_recipient == "service_auto@chx.mssante.fr"
    assert rcpt.action == "processed"
    assert rcpt.error_code == "902"
    assert rcpt.error_label == "Identifiant de patient inconnu"
    assert rcpt.diagnostic.startswith("902^Identifiant de patient inconnu^messageErrorCondition")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "automatic-action/MDN-sent-automatically; processed",
            ("automatic-action/MDN-sent-automatically", "processed", "", ""),
        ),
        (
            "Manual-Action/MDN-sent-manually ;  Displayed",
            ("Manual-Action/MDN-sent-manually", "displayed", "", ""),
        ),
        (
            "automatic-action/MDN-sent-automatically; processed/error",
            ("automatic-action/MDN-sent-automatically", "processed", "error", ""),
        ),
        (
            "automatic-action/MDN-sent-automatically; deleted/Error: 906^Autre",
            ("automatic-action/MDN-sent-automatically", "deleted", "error", "906^Autre"),
        ),
    ],
)
def test_parse_disposition(value: str, expected: tuple[str, str, str, str]) -> None:
    assert parse_disposition(value) == expected


# --- DSN ------------------------------------------------------------------------------------------------


def test_dsn_round_trip() -> None:
    msg = build_dsn(
        original=original(),
        reporting_mta="mail.ch-exemple.mssante.fr",
        from_addr="mailer-daemon@ch-exemple.mssante.fr",
        to=SENDER,
        message_id="<dsn.1@ch-exemple.mssante.fr>",
        date=WHEN,
        arrival_date=WHEN - dt.timedelta(minutes=5),
        recipients=[
            DsnRecipient(
                final_recipient="inconnu@chb.mssante.fr",
                action="failed",
                status="5.1.1",
                diagnostic="smtp; 550 5.1.1 Mailbox unknown",
                remote_mta="mx.chb.mssante.fr",
            ),
            DsnRecipient(final_recipient=RECIPIENT, action="delayed", status="4.4.7", diagnostic="timeout"),
        ],
    )
    wire = bytes(msg)
    received = RECEIVER.parsebytes(wire)
    assert received.get_content_type() == "multipart/report"
    assert received.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in parts_of(received)] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert b"Reporting-MTA: dns; mail.ch-exemple.mssante.fr" in wire
    assert b"Status: 5.1.1" in wire
    assert b"Diagnostic-Code: smtp; timeout" in wire
    assert "inconnu@chb.mssante.fr" in parts_of(received)[0].get_content()

    report = parse_report(wire)
    assert report.kind == "dsn"
    assert report.original_message_id == ORIGINAL_ID
    assert report.reporting == "dns; mail.ch-exemple.mssante.fr"
    assert [(r.recipient, r.action, r.status, r.diagnostic) for r in report.per_recipient] == [
        ("inconnu@chb.mssante.fr", "failed", "5.1.1", "smtp; 550 5.1.1 Mailbox unknown"),
        (RECIPIENT, "delayed", "4.4.7", "smtp; timeout"),
    ]
    assert [r.failed for r in report.per_recipient] == [True, False]
    assert parse_message(wire).report_kind == "dsn"


@pytest.mark.parametrize(
    ("recipient", "code"),
    [
        (DsnRecipient("a@b.fr", "lost", "5.1.1"), "bad_action"),
        (DsnRecipient("a@b.fr", "failed", "550"), "bad_status"),
        (DsnRecipient("nope", "failed", "5.1.1"), "bad_address"),
    ],
)
def test_dsn_bad_input(recipient: DsnRecipient, code: str) -> None:
    with pytest.raises(ReportError) as excinfo:
        build_dsn(
            original=original(),
            reporting_mta="mx.example.fr",
            from_addr="mailer-daemon@example.fr",
            to=SENDER,
            message_id="<d@example.fr>",
            date=WHEN,
            recipients=[recipient],
        )
    assert excinfo.value.code == code


# Written in the style of the RFC 3464 appendix examples (values are ours).
RFC_STYLE_DSN = b"""Date: Thu, 7 Jul 1994 17:16:05 -0400
From: Mail Delivery Subsystem <MAILER-DAEMON@cs.example.edu>
Message-Id: <199407072116.RAA14128@cs.example.edu>
Subject: Returned mail: Cannot send message for 5 days
To: <owner@example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="RAA14128.773615765/CS.EXAMPLE.EDU"

--RAA14128.773615765/CS.EXAMPLE.EDU

   ----- The following addresses had delivery problems -----
<louisl@larry.example.net>  (unrecoverable error)
<kkeith@example.com>  (transient failure)

--RAA14128.773615765/CS.EXAMPLE.EDU
content-type: message/delivery-status

Reporting-MTA: dns; cs.example.edu
Arrival-Date: Fri, 1 Jul 1994 09:23:11 -0400

Original-Recipient: rfc822;louisl@larry.example.net
Final-Recipient: rfc822;louisl@larry.example.net
Action: failed
Status: 4.0.0
Diagnostic-Code: smtp; 426 connection timed out
Last-Attempt-Date: Thu, 7 Jul 1994 17:15:49 -0400

Final-Recipient: RFC822; kkeith@example.com
Action: delayed
Status: 4.0.0
Will-Retry-Until: Fri, 8 Jul 1994 09:23:11 -0400

--RAA14128.773615765/CS.EXAMPLE.EDU
content-type: text/rfc822-headers

Return-Path: <owner@example.org>
Received: from somewhere by cs.example.edu; Fri, 1 Jul 1994 09:23:11 -0400
Message-ID: <original.42@example.org>
Subject: Prochaine reunion

--RAA14128.773615765/CS.EXAMPLE.EDU--
"""


def test_parse_rfc_style_dsn() -> None:
    report = parse_report(RFC_STYLE_DSN)
    assert report.kind == "dsn"
    assert report.reporting == "dns; cs.example.edu"
    assert report.fields["arrival-date"] == "Fri, 1 Jul 1994 09:23:11 -0400"
    assert report.original_message_id == "<original.42@example.org>"
    assert [(r.recipient, r.action, r.status) for r in report.per_recipient] == [
        ("louisl@larry.example.net", "failed", "4.0.0"),
        ("kkeith@example.com", "delayed", "4.0.0"),
    ]
    assert report.per_recipient[0].diagnostic == "smtp; 426 connection timed out"
    assert report.per_recipient[0].original_recipient == "louisl@larry.example.net"
    assert report.per_recipient[0].failed is True


def test_parse_report_refuses_ordinary_mail() -> None:
    with pytest.raises(ReportError) as excinfo:
        parse_report(original())
    assert excinfo.value.code == "not_report"
    with pytest.raises(ReportError):
        parse_report(b"garbage \x00\xff")


# --- should_send_mdn ------------------------------------------------------------------------------------


def test_should_send_mdn_only_when_requested() -> None:
    assert should_send_mdn(parse_message(original())) is True
    assert should_send_mdn(parse_message(original(dnt=None))) is False


def test_never_acknowledge_an_acknowledgement() -> None:
    report_asking = bytes(mdn())
    assert RECEIVER.parsebytes(report_asking)["Disposition-Notification-To"] is None
    # Even if a report carried the request, it must not be answered.
    tampered = b"Disposition-Notification-To: " + SENDER.encode() + b"\r\n" + report_asking
    assert parse_message(tampered).disposition_notification_to == SENDER
    assert should_send_mdn(parse_message(tampered)) is False
    dsn_asking = b"Disposition-Notification-To: " + SENDER.encode() + b"\r\n" + RFC_STYLE_DSN
    assert should_send_mdn(parse_message(dsn_asking)) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no", True),
        ("No (comment)", True),
        ("auto-generated", False),
        ("auto-replied", False),
        ("auto-notified; owner-email=x@y.fr", False),
    ],
)
def test_auto_submitted(value: str, expected: bool) -> None:
    assert should_send_mdn(parse_message(original(Auto_Submitted=value))) is expected


def test_return_path_mismatch_needs_the_user() -> None:
    same = parse_message(original(Return_Path=f"<{SENDER}>"))
    other = parse_message(original(Return_Path="<bounces@elsewhere.example.org>"))
    assert should_send_mdn(same) is True
    assert should_send_mdn(other) is False
    assert should_send_mdn(other, automatic=False) is True
