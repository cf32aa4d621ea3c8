"""Delivery reports: DSN (RFC 3464) and MDN (RFC 8098), as MSSanté uses them (standards §3).

Both are ``multipart/report`` (RFC 6522) with a human-readable part, a machine-readable part and the
original message (or its headers):

* MDN: ``report-type=disposition-notification``; second part ``message/disposition-notification`` with
  ``Reporting-UA``, ``Original-Recipient``, ``Final-Recipient``, ``Original-Message-ID`` and
  ``Disposition``. The MSSanté IG (``struct-msg-mdn.md``) writes an integration error as
  ``Disposition: automatic-action/MDN-sent-automatically; processed/Error: <code>^<libellé>`` and wants
  the original message as a third ``message/rfc822`` part.
* DSN: ``report-type=delivery-status``; second part ``message/delivery-status``: per-message fields
  (``Reporting-MTA``, ``Arrival-Date``…) then one block per recipient (``Final-Recipient``, ``Action``,
  ``Status``, ``Diagnostic-Code``…); third part the original headers (``text/rfc822-headers``).

Pure code: no Django import.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime

from messagerie.standards import CodedError
from messagerie.standards.mime import (
    MimeError,
    ParsedAttachment,
    ParsedMessage,
    is_valid_address,
    is_valid_message_id,
    parse_message,
)

MDN_ACTION_MODES = ("automatic-action", "manual-action")
MDN_SENDING_MODES = ("MDN-sent-automatically", "MDN-sent-manually")
MDN_TYPES = ("displayed", "dispatched", "processed", "deleted")
DSN_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
ERROR_PREFIX = "[KO Intégration système !]"
# MSSanté integration error codes (mss-IG error-codes.md; codes [V] in standards §3). Only the 902 label is
# the IG's own wording (its MDN example); the others paraphrase standards §3 [unverified wording].
INTEGRATION_ERRORS = {
    "900": "Version du document non supportée",
    "901": "Auteur non autorisé",
    "902": "Identifiant de patient inconnu",
    "903": "Absence d'INS dans le document CDA",
    "904": "Incohérence entre l'INS et les traits d'identité",
    "905": "INS incomplet",
    "906": "Autre erreur",
}
# Reports keep their machine-readable fields on one line each (RFC 5322 allows 998 characters): some
# receivers read the disposition-notification part line by line without unfolding.
POLICY = policy.SMTP.clone(max_line_length=998)


class ReportError(CodedError):
    """A report cannot be built or read. `code` is stable, `message` is French."""


@dataclass(frozen=True)
class ReportRecipient:
    """One recipient of a report. For an MDN, `action` is the disposition type (``processed``…), `status`
    is ``error`` when an error modifier is present, `diagnostic` the error text (``902^libellé``)."""

    recipient: str
    action: str
    status: str = ""
    diagnostic: str = ""
    original_recipient: str = ""
    error_code: str = ""
    error_label: str = ""

    @property
    def failed(self) -> bool:
        if self.action == "failed" or self.status.startswith("5") or self.status == "error":
            return True
        return bool(self.error_code)


@dataclass(frozen=True)
class DeliveryReport:
    kind: str  # "dsn" | "mdn"
    original_message_id: str
    per_recipient: list[ReportRecipient] = field(default_factory=list)
    disposition_mode: str = ""  # MDN: "automatic-action/MDN-sent-automatically"
    reporting: str = ""  # MDN Reporting-UA / DSN Reporting-MTA
    fields: dict[str, str] = field(default_factory=dict)  # per-message fields, lower-case names


# --- Helpers --------------------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    """Accents folded, controls removed: machine-readable report fields stay plain 7-bit ASCII."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[\x00-\x1f\x7f]+", " ", folded).strip()


def _no_newline(value: str, label: str) -> str:
    if "\r" in value or "\n" in value:
        raise ReportError("bad_header", f"{label} ne doit pas contenir de retour à la ligne.")
    return value


def _address_field(addr: str) -> str:
    return f"rfc822;{addr}"


def _strip_address_type(value: str) -> str:
    """``rfc822; a@b`` → ``a@b`` (the address type is dropped; other types are kept whole)."""
    kind, sep, addr = value.partition(";")
    if sep and kind.strip().lower() in ("rfc822", "utf-8"):
        return addr.strip().strip("<>")
    return value.strip()


def _report_envelope(
    *,
    report_type: str,
    from_addr: str,
    to: str,
    subject: str,
    message_id: str,
    date: datetime,
    human_text: str,
    machine: EmailMessage,
    original: EmailMessage,
    extra_headers: Sequence[tuple[str, str]] = (),
    extra_parts: Sequence[EmailMessage] = (),
) -> EmailMessage:
    for addr, label in ((from_addr, "Expéditeur"), (to, "Destinataire")):
        if not is_valid_address(addr):
            raise ReportError("bad_address", f"{label} du rapport : adresse invalide « {addr[:200]} ».")
    _no_newline(subject, "L'objet")
    if not is_valid_message_id(message_id):
        raise ReportError("bad_message_id", "Identifiant de message invalide (attendu « <id@domaine> »).")
    if date.tzinfo is None:
        raise ReportError("bad_date", "La date du rapport doit porter un fuseau horaire.")

    human = EmailMessage(policy=POLICY)
    human.set_content(human_text, subtype="plain", charset="utf-8", cte="quoted-printable")

    msg = EmailMessage(policy=POLICY)
    msg["From"] = from_addr
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    # Reports are automatic: RFC 3834 tells auto-responders (and our own MDN rule) not to answer them.
    msg["Auto-Submitted"] = "auto-replied"
    for name, value in extra_headers:
        msg[name] = _no_newline(value, name)
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/report"
    msg.set_param("report-type", report_type)
    parts: list[Message | str] = [human, machine, original, *extra_parts]
    msg.set_payload(parts)
    for part in parts:
        if isinstance(part, Message):
            del part["MIME-Version"]
    return msg


def _original_part(original: Message, *, full: bool) -> EmailMessage:
    part = EmailMessage(policy=POLICY)
    if full:
        part["Content-Type"] = "message/rfc822"
        part.set_payload([original])
        return part
    headers = "".join(f"{name}: {value}\r\n" for name, value in original.items())
    part.set_content(headers, subtype="rfc822-headers", charset="utf-8", cte="quoted-printable")
    return part


def _parse_original(raw: bytes) -> Message:
    return BytesParser(policy=POLICY).parsebytes(raw)


# --- MDN ------------------------------------------------------------------------------------------------


def mdn_subject(original_subject: str, error_code: str | None = None) -> str:
    """The MDN subject per the MSSanté IG: the original subject, prefixed ``[KO Intégration système !][code]``
    on an integration error."""
    subject = re.sub(r"[\r\n]+", " ", original_subject).strip()
    if error_code:
        return f"{ERROR_PREFIX}[{error_code}] {subject}".strip()
    return subject


def build_mdn(
    *,
    original: bytes,
    reporting_ua: str,
    final_recipient: str,
    from_addr: str,
    message_id: str,
    date: datetime,
    original_recipient: str | None = None,
    manual: bool = False,
    disposition_type: str = "processed",
    error: tuple[str, str] | None = None,
    human_text: str | None = None,
    subject: str | None = None,
    include_original: bool = True,
    reattach_attachments: bool = False,
) -> EmailMessage:
    """An MDN for the message `original` (raw bytes), sent to its ``Disposition-Notification-To``.

    `reporting_ua` is ``"<host>; <product>"``; `error` is ``(code, libellé)`` (e.g. ``("902",
    "Identifiant de patient inconnu")``) and makes the disposition ``processed/Error: code^libellé``.
    `manual` gives ``manual-action/MDN-sent-manually`` (typically with ``displayed``). The original
    message is the third part (``message/rfc822``) unless `include_original` is False (headers only).
    `reattach_attachments` also adds the original's attachments (IHE_XDM.zip, PDF) as parts after the
    third, as the MSSanté IG example shows.
    Raises `ReportError` when the original has no ``Disposition-Notification-To`` or input is invalid.
    """
    if disposition_type not in MDN_TYPES:
        raise ReportError("bad_disposition", f"Type de disposition inconnu « {disposition_type} ».")
    try:
        parsed = parse_message(original)
    except MimeError as exc:
        raise ReportError("bad_original", f"Message d'origine illisible : {exc.message}") from exc
    to = parsed.disposition_notification_to
    if not to:
        raise ReportError(
            "no_request", "Le message d'origine ne demande pas d'accusé (Disposition-Notification-To)."
        )
    if not is_valid_address(final_recipient):
        raise ReportError("bad_address", f"Destinataire final invalide « {final_recipient[:200]} ».")
    _no_newline(reporting_ua, "Reporting-UA")
    mode = "manual-action/MDN-sent-manually" if manual else "automatic-action/MDN-sent-automatically"
    disposition = f"{mode}; {disposition_type}"
    if error is not None:
        code, label = error
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,20}", code):
            raise ReportError("bad_error", f"Code d'erreur invalide « {code[:40]} ».")
        disposition += f"/Error: {code}^{_ascii(label)}"

    fields = Message(policy=POLICY)
    fields["Reporting-UA"] = _ascii(reporting_ua)
    recipient_header = original_recipient or parsed.header("original-recipient")
    if recipient_header:
        recipient_header = _strip_address_type(recipient_header)
        fields["Original-Recipient"] = _address_field(_ascii(recipient_header))
    fields["Final-Recipient"] = _address_field(final_recipient)
    if parsed.message_id:
        fields["Original-Message-ID"] = _ascii(parsed.message_id)
    fields["Disposition"] = disposition
    machine = EmailMessage(policy=POLICY)
    machine["Content-Type"] = "message/disposition-notification"
    machine.set_payload([fields])

    if human_text is None:
        if error is not None:
            human_text = (
                "Le message ci-dessous n'a pas pu être intégré automatiquement pour la raison suivante : "
                f"{error[0]}^{error[1]}\n"
            )
        elif disposition_type == "displayed":
            human_text = f"Le message a été affiché par son destinataire {final_recipient}.\n"
        else:
            human_text = f"Le message a été traité par le destinataire {final_recipient}.\n"
    extra = (
        [("In-Reply-To", parsed.message_id), ("References", parsed.message_id)] if parsed.message_id else []
    )
    return _report_envelope(
        report_type="disposition-notification",
        from_addr=from_addr,
        to=to,
        subject=subject if subject is not None else mdn_subject(parsed.subject, error[0] if error else None),
        message_id=message_id,
        date=date,
        human_text=human_text,
        machine=machine,
        original=_original_part(_parse_original(original), full=include_original),
        extra_headers=extra,
        extra_parts=[_attachment_part(a) for a in parsed.attachments] if reattach_attachments else [],
    )


def _attachment_part(attachment: ParsedAttachment) -> EmailMessage:
    part = EmailMessage(policy=POLICY)
    maintype, _, subtype = attachment.content_type.partition("/")
    if maintype in ("message", "multipart", "text") or not subtype:
        maintype, subtype = "application", "octet-stream"
    part.set_content(
        attachment.data,
        maintype=maintype,
        subtype=subtype,
        filename=attachment.filename,
        params={"name": attachment.filename},
    )
    return part


# --- DSN ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DsnRecipient:
    final_recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # "5.1.1"
    diagnostic: str = ""  # "smtp; 550 5.1.1 user unknown"
    original_recipient: str = ""
    remote_mta: str = ""


def build_dsn(
    *,
    original: bytes,
    reporting_mta: str,
    from_addr: str,
    to: str,
    message_id: str,
    date: datetime,
    recipients: Sequence[DsnRecipient],
    arrival_date: datetime | None = None,
    human_text: str | None = None,
    subject: str = "Échec de remise du message",
    include_original: bool = False,
) -> EmailMessage:
    """A DSN about `original` (raw bytes) for `recipients`, sent to `to` (the original envelope sender).

    The third part is the original headers (``text/rfc822-headers``), or the whole message when
    `include_original`. Raises `ReportError` on invalid input.
    """
    if not recipients:
        raise ReportError("no_recipient", "Un rapport de remise doit concerner au moins un destinataire.")
    _no_newline(reporting_mta, "Reporting-MTA")
    per_message = Message(policy=POLICY)
    per_message["Reporting-MTA"] = f"dns; {_ascii(reporting_mta)}"
    if arrival_date is not None:
        per_message["Arrival-Date"] = format_datetime(arrival_date)
    blocks: list[Message | str] = [per_message]
    lines = []
    for rcpt in recipients:
        if rcpt.action not in DSN_ACTIONS:
            raise ReportError("bad_action", f"Action DSN inconnue « {rcpt.action} ».")
        if not _STATUS.match(rcpt.status):
            raise ReportError("bad_status", f"Statut DSN invalide « {rcpt.status} » (attendu « 5.1.1 »).")
        if not is_valid_address(rcpt.final_recipient):
            raise ReportError("bad_address", f"Destinataire invalide « {rcpt.final_recipient[:200]} ».")
        block = Message(policy=POLICY)
        if rcpt.original_recipient:
            block["Original-Recipient"] = _address_field(_ascii(rcpt.original_recipient))
        block["Final-Recipient"] = _address_field(rcpt.final_recipient)
        block["Action"] = rcpt.action
        block["Status"] = rcpt.status
        if rcpt.remote_mta:
            block["Remote-MTA"] = f"dns; {_ascii(rcpt.remote_mta)}"
        if rcpt.diagnostic:
            diagnostic = _ascii(rcpt.diagnostic)
            block["Diagnostic-Code"] = diagnostic if ";" in diagnostic else f"smtp; {diagnostic}"
        blocks.append(block)
        lines.append(f"- {rcpt.final_recipient} : {rcpt.action} ({rcpt.status}) {rcpt.diagnostic}".rstrip())
    machine = EmailMessage(policy=POLICY)
    machine["Content-Type"] = "message/delivery-status"
    machine.set_payload(blocks)
    if human_text is None:
        human_text = (
            "Le message n'a pas pu être remis aux destinataires suivants :\n" + "\n".join(lines) + "\n"
        )
    try:
        original_msg = _parse_original(original)
    except Exception as exc:  # pragma: no cover - the stdlib parser is lenient
        raise ReportError("bad_original", "Message d'origine illisible.") from exc
    original_id = str(original_msg.get("Message-ID", "") or "")
    extra = [("In-Reply-To", original_id)] if original_id else []
    return _report_envelope(
        report_type="delivery-status",
        from_addr=from_addr,
        to=to,
        subject=subject,
        message_id=message_id,
        date=date,
        human_text=human_text,
        machine=machine,
        original=_original_part(original_msg, full=include_original),
        extra_headers=extra,
    )


# --- Parsing --------------------------------------------------------------------------------------------


def _fields(block: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in block:
        key = name.lower()
        if key in out:
            continue
        try:
            value = str(block.get(name, ""))
        except Exception:
            value = ""
        out[key] = re.sub(r"\r?\n[ \t]*", " ", value).strip()
    return out


def _header_blocks(text: str) -> list[Message]:
    """Blocks of ``Name: value`` lines separated by blank lines, read as headers (lenient)."""
    parser = BytesParser(policy=policy.default)
    blocks: list[Message] = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text.strip()):
        if chunk.strip():
            blocks.append(parser.parsebytes(chunk.encode("utf-8", "replace") + b"\r\n\r\n", headersonly=True))
    return blocks


def _machine_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    if isinstance(payload, str):  # a parser that did not split the fields (e.g. text/plain fallback)
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else payload
        return _header_blocks(text)
    return []


def _original_message_id(part: Message | None) -> str:
    if part is None:
        return ""
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return _fields(payload[0]).get("message-id", "")
        return ""
    raw = part.get_payload(decode=True)
    if isinstance(raw, bytes):
        blocks = _header_blocks(raw.decode("utf-8", "replace"))
        if blocks:
            return _fields(blocks[0]).get("message-id", "")
    return ""


def parse_disposition(value: str) -> tuple[str, str, str, str]:
    """``mode; type/modifier`` → (mode, type, modifier, error text). Lenient on case and spaces."""
    mode, _, rest = value.partition(";")
    mode = re.sub(r"\s+", "", mode)
    rest = rest.strip()
    dtype, _, modifier = rest.partition("/")
    dtype = dtype.strip().lower()
    modifier = modifier.strip()
    error_text = ""
    if modifier.lower().startswith("error"):
        _, _, error_text = modifier.partition(":")
        error_text = error_text.strip()
        modifier = "error"
    return mode, dtype, modifier, error_text


def parse_report(raw: bytes) -> DeliveryReport:
    """Read a DSN or an MDN. Raises `ReportError` ``not_report`` when `raw` is neither."""
    try:
        msg = BytesParser(policy=policy.default).parsebytes(bytes(raw))
    except Exception as exc:  # pragma: no cover - the stdlib parser is lenient
        raise ReportError("not_report", "Le message n'est pas un rapport lisible.") from exc
    if msg.get_content_type() != "multipart/report" or not isinstance(msg.get_payload(), list):
        raise ReportError("not_report", "Le message n'est pas un rapport (multipart/report).")
    parts = [p for p in msg.get_payload() if isinstance(p, Message)]
    machine = next(
        (
            p
            for p in parts
            if p.get_content_type()
            in (
                "message/delivery-status",
                "message/disposition-notification",
                "message/global-delivery-status",
                "message/global-disposition-notification",
            )
        ),
        None,
    )
    if machine is None:
        raise ReportError("not_report", "Le rapport ne contient pas de partie lisible par une machine.")
    original_part = next(
        (
            p
            for p in parts
            if p.get_content_type()
            in ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")
        ),
        None,
    )
    blocks = _machine_blocks(machine)
    if not blocks:
        raise ReportError("not_report", "Le rapport ne contient aucun champ.")
    if machine.get_content_subtype().endswith("disposition-notification"):
        fields = _fields(blocks[0])
        mode, dtype, modifier, error_text = parse_disposition(fields.get("disposition", ""))
        code, _, label = error_text.partition("^")
        recipient = ReportRecipient(
            recipient=_strip_address_type(fields.get("final-recipient", "")),
            action=dtype,
            status="error" if modifier == "error" else "",
            diagnostic=error_text,
            original_recipient=_strip_address_type(fields.get("original-recipient", "")),
            error_code=code.strip(),
            error_label=label.split("^")[0].strip() if label else "",
        )
        original_id = fields.get("original-message-id", "") or _original_message_id(original_part)
        return DeliveryReport(
            kind="mdn",
            original_message_id=original_id,
            per_recipient=[recipient],
            disposition_mode=mode,
            reporting=fields.get("reporting-ua", ""),
            fields=fields,
        )
    per_message = _fields(blocks[0])
    recipients = []
    for block in blocks[1:]:
        fields = _fields(block)
        if not fields.get("final-recipient"):
            continue
        recipients.append(
            ReportRecipient(
                recipient=_strip_address_type(fields["final-recipient"]),
                action=fields.get("action", "").lower(),
                status=fields.get("status", "").split(" ")[0],
                diagnostic=fields.get("diagnostic-code", ""),
                original_recipient=_strip_address_type(fields.get("original-recipient", "")),
            )
        )
    original_id = _original_message_id(original_part) or _fields(msg).get("in-reply-to", "")
    return DeliveryReport(
        kind="dsn",
        original_message_id=original_id,
        per_recipient=recipients,
        reporting=per_message.get("reporting-mta", ""),
        fields=per_message,
    )


# --- Rules ----------------------------------------------------------------------------------------------


def should_send_mdn(parsed: ParsedMessage, *, automatic: bool = True) -> bool:
    """Whether an MDN may be sent for `parsed` (RFC 8098 §2.1 and the MSSanté IG).

    Only when ``Disposition-Notification-To`` is present; never for a report (never acknowledge an
    acknowledgement); never for an ``Auto-Submitted`` message other than ``no``. When `automatic`, also
    not when ``Return-Path`` is present and differs from the requested address (RFC 8098: ask the user).
    """
    target = parsed.disposition_notification_to.strip()
    if not target or not is_valid_address(target):
        return False
    if parsed.is_report or parsed.content_type == "multipart/report":
        return False
    auto = parsed.header("auto-submitted")
    if auto:
        value = re.sub(r"\([^)]*\)", "", auto).split(";")[0].strip().lower()
        if value != "no":
            return False
    if automatic:
        return_path = parsed.header("return-path").strip().strip("<>").strip()
        if return_path and return_path.lower() != target.lower():
            return False
    return True
