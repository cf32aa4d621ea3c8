"""MSSanté messages on the wire: build the outgoing MIME message, read an incoming one robustly.

Headers an LPS must write (standards §3, Référentiel socle MSSanté #2; [V-3p]):

* ``X-MSS-NIL`` on every message: the product reference from convergence.esante.gouv.fr (passed in).
* ``X-MSS-CODECDA`` (comma-separated ``ClinicalDocument/code/@code``) and ``X-MSS-INS`` (``O``/``N``) only
  when an IHE XDM archive holding a CDA is attached — they are computed from the archive itself so they
  always match what is sent.
* ``X-MSS-MES: FIN`` when writing to a patient (``<INS>@patient.mssante.fr``) who must not reply.

The IHE XDM zip is attached as ``application/zip; name="IHE_XDM.zip"`` (base64), next to the
human-readable PDF. Pure code: no Django import.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime

from enrs.patients.ins import mod97_is_valid
from messagerie.standards import CodedError, xdm

PATIENT_DOMAIN = "patient.mssante.fr"
HEADER_NIL = "X-MSS-NIL"
HEADER_CODECDA = "X-MSS-CODECDA"
HEADER_INS = "X-MSS-INS"
HEADER_MES = "X-MSS-MES"
DEFAULT_MAX_MESSAGE_BYTES = 60 * 1024 * 1024

# Deliberately narrow: MSSanté addresses are plain ASCII ``local@domain`` (no quoted local parts).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_FILENAME_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_MAX_FILENAME = 150


class MimeError(CodedError):
    """A message cannot be built or read. `code` is stable, `message` is French, for the user."""


# --- Addresses ------------------------------------------------------------------------------------------


def split_address(addr: str) -> tuple[str, str] | None:
    """(local part, lower-case domain) of a bare ``local@domain`` address, or None when it is not one."""
    if not isinstance(addr, str) or addr != addr.strip() or addr.count("@") != 1 or len(addr) > 254:
        return None
    local, domain = addr.split("@")
    if len(local) > 64 or not _LOCAL.match(local) or not _DOMAIN.match(domain):
        return None
    return local, domain.lower()


def is_valid_address(addr: str) -> bool:
    return split_address(addr) is not None


_MESSAGE_ID = re.compile(r"^<[^<>\s@]{1,200}@[^<>\s@]{1,200}>$")


def is_valid_message_id(value: str) -> bool:
    """True for a ``<id@domain>`` Message-ID as we generate them (no spaces, one @)."""
    return bool(_MESSAGE_ID.match(value))


def is_patient_address(addr: str) -> bool:
    """True for ``<matricule INS>@patient.mssante.fr`` whose matricule has a valid mod-97 key."""
    parts = split_address(addr)
    if parts is None:
        return False
    local, domain = parts
    return domain == PATIENT_DOMAIN and mod97_is_valid(local)


def is_mssante_address(addr: str, trusted_domains: Iterable[str]) -> bool:
    """True when `addr` is in the MSSanté trust space: its domain is one of `trusted_domains`.

    `trusted_domains` is the ANS list of authorised domains (from settings): an entry matches that exact
    domain; an entry starting with a dot (``.mssante.fr``) matches every sub-domain of it.
    """
    parts = split_address(addr)
    if parts is None:
        return False
    domain = parts[1]
    for trusted in trusted_domains:
        trusted = trusted.strip().lower()
        if not trusted:
            continue
        if trusted.startswith("."):
            if domain.endswith(trusted) and len(domain) > len(trusted):
                return True
        elif domain == trusted:
            return True
    return False


# --- Building -------------------------------------------------------------------------------------------


def xdm_subject(label: str, family: str, given: str, birth_date: dt.date) -> str:
    """The subject of a message carrying a CDA: ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>``
    (mss-IG struct-msg-mdn.md example: ``XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX
    12/10/1988``)."""
    words = [re.sub(r"\s+", " ", part).strip() for part in (label, family.upper(), given)]
    return f"XDM/1.0/DDM+{' '.join(w for w in words if w)} {birth_date:%d/%m/%Y}"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "application/pdf"
    data: bytes


def _check_header_text(value: str, label: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise MimeError("bad_header", f"{label} ne doit pas contenir de retour à la ligne.")
    return value


def _check_addresses(addresses: Iterable[str], label: str) -> list[str]:
    result = []
    for addr in addresses:
        if not is_valid_address(addr):
            raise MimeError("bad_address", f"{label} : adresse invalide « {addr[:200]} ».")
        result.append(addr)
    return result


def _split_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.strip().lower().partition("/")
    if not maintype or not subtype or not re.fullmatch(r"[a-z0-9!#$&^_.+-]+", maintype + subtype):
        raise MimeError("bad_attachment", f"Type de pièce jointe invalide « {content_type[:100]} ».")
    return maintype, subtype


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    message_id: str,
    date: dt.datetime,
    nil: str,
    text: str,
    cc: Sequence[str] = (),
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    xdm_zip: bytes | None = None,
    disposition_notification_to: str | None = None,
    patient_may_reply: bool = True,
    xdm_limits: dict[str, int] | None = None,
) -> EmailMessage:
    """The outgoing MSSanté message (policy SMTP: ``bytes(message)`` is what goes on the wire).

    `message_id` is the full ``<id@domain>``; `nil` the product reference for ``X-MSS-NIL``. When
    `xdm_zip` is given it is read back with `xdm.parse_xdm` (limits `xdm_limits`) to compute
    ``X-MSS-CODECDA``/``X-MSS-INS`` and attached after `attachments` (put the PDF there).
    ``X-MSS-MES: FIN`` is written when a recipient is a patient and `patient_may_reply` is False.
    Raises `MimeError` (French message) on bad input.
    """
    if not is_valid_address(sender):
        raise MimeError("bad_address", f"Expéditeur : adresse invalide « {sender[:200]} ».")
    to_list = _check_addresses(to, "Destinataire")
    cc_list = _check_addresses(cc, "Copie")
    if not to_list:
        raise MimeError("no_recipient", "Le message doit avoir au moins un destinataire.")
    _check_header_text(subject, "L'objet")
    if not is_valid_message_id(message_id):
        raise MimeError("bad_message_id", "Identifiant de message invalide (attendu « <id@domaine> »).")
    nil = _check_header_text(nil.strip(), "La référence X-MSS-NIL")
    if not nil:
        raise MimeError("missing_nil", "La référence produit X-MSS-NIL est obligatoire.")
    if date.tzinfo is None:
        raise MimeError("bad_date", "La date du message doit porter un fuseau horaire.")

    codes: list[str] = []
    qualified = False
    if xdm_zip is not None:
        try:
            package = xdm.parse_xdm(xdm_zip, **(xdm_limits or {}))
        except xdm.XdmError as exc:
            raise MimeError("bad_xdm", f"Archive IHE_XDM invalide : {exc.message}") from exc
        codes = xdm.cda_codes(package)
        qualified = xdm.has_qualified_ins(package)

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to_list)
    if cc_list:
        msg["Cc"] = ", ".join(cc_list)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if disposition_notification_to is not None:
        if not is_valid_address(disposition_notification_to):
            raise MimeError("bad_address", "Adresse de demande d'accusé de lecture invalide.")
        msg["Disposition-Notification-To"] = disposition_notification_to
    msg[HEADER_NIL] = nil
    if codes:
        msg[HEADER_CODECDA] = ",".join(codes)
        msg[HEADER_INS] = "O" if qualified else "N"
    if not patient_may_reply and any(is_patient_address(a) for a in [*to_list, *cc_list]):
        msg[HEADER_MES] = "FIN"

    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for attachment in attachments:
        maintype, subtype = _split_type(attachment.content_type)
        name = sanitize_filename(attachment.filename, content_type=attachment.content_type)
        msg.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=name, params={"name": name}
        )
    if xdm_zip is not None:
        msg.add_attachment(
            xdm_zip,
            maintype="application",
            subtype="zip",
            filename=xdm.ZIP_FILENAME,
            params={"name": xdm.ZIP_FILENAME},
        )
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]
    return msg


# --- Reading --------------------------------------------------------------------------------------------

_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/xml": ".xml",
    "application/xml": ".xml",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "message/rfc822": ".eml",
}


def sanitize_filename(name: str | None, *, content_type: str = "", index: int = 1) -> str:
    """A file name safe to show and store: no directory, control or reserved characters, bounded length."""
    cleaned = unicodedata.normalize("NFC", name or "")
    cleaned = cleaned.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _FILENAME_FORBIDDEN.sub("_", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .")
    if len(cleaned) > _MAX_FILENAME:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            cleaned = stem[: _MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            cleaned = cleaned[:_MAX_FILENAME].rstrip(" .")
    if not cleaned:
        cleaned = f"piece-jointe-{index}{_EXTENSIONS.get(content_type.lower(), '.bin')}"
    return cleaned


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str
    subject: str
    from_addr: str
    to: list[str]
    cc: list[str]
    date: dt.datetime | None
    headers: dict[str, str]  # lower-case name -> first value (unfolded, decoded)
    text: str
    html: str
    attachments: list[ParsedAttachment] = field(default_factory=list)
    disposition_notification_to: str = ""
    is_report: bool = False
    report_kind: str | None = None  # "dsn" | "mdn" | None
    content_type: str = "text/plain"
    defects: int = 0

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def _header_str(msg: Message, name: str) -> str:
    """A header as text; never raises (malformed headers fall back to their raw value)."""
    try:
        value = msg.get(name)
    except Exception:  # the header registry may choke on hostile values
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        value = raw[0] if raw else None
    if value is None:
        return ""
    text = str(value)
    return re.sub(r"\r?\n[ \t]*", " ", text).strip()


def _address_list(value: str) -> list[str]:
    try:
        pairs = getaddresses([value])
    except Exception:  # pragma: no cover - getaddresses is lenient but stay defensive
        return []
    return [addr for _name, addr in pairs if addr and "@" in addr]


def _single_address(value: str) -> str:
    try:
        return parseaddr(value)[1]
    except Exception:  # pragma: no cover
        return ""


def _report_kind(msg: Message) -> str | None:
    try:
        if msg.get_content_type() != "multipart/report":
            return None
        report_type = (msg.get_param("report-type") or "").__str__().strip().lower()
    except Exception:
        return None
    return {"delivery-status": "dsn", "disposition-notification": "mdn"}.get(report_type)


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")


def _leaf_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        if isinstance(payload, list) and payload:
            inner = payload[0]
            if isinstance(inner, Message):
                try:
                    return inner.as_bytes(policy=policy.SMTP.clone(max_line_length=0))
                except Exception:
                    return b""
        return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _is_attachment(part: Message) -> bool:
    try:
        disposition = (part.get_content_disposition() or "").lower()
    except Exception:
        disposition = ""
    if disposition == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart"):
        return part.get_filename() is not None and disposition != "inline"
    return True


def _collect(msg: Message, out: dict[str, list], depth: int = 0) -> None:
    if depth > 20:
        return
    if msg.is_multipart():
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                _collect(sub, out, depth + 1)
        return
    content_type = msg.get_content_type()
    if content_type == "text/plain" and not _is_attachment(msg) and not out["text"]:
        out["text"].append(_text_of(msg))
        return
    if content_type == "text/html" and not _is_attachment(msg) and not out["html"]:
        out["html"].append(_text_of(msg))
        return
    if content_type in ("text/plain", "text/html") and not _is_attachment(msg):
        return
    try:
        filename = msg.get_filename()
    except Exception:
        filename = None
    index = len(out["attachments"]) + 1
    out["attachments"].append(
        ParsedAttachment(
            filename=sanitize_filename(filename, content_type=content_type, index=index),
            content_type=content_type,
            data=_leaf_bytes(msg),
        )
    )


def parse_message(raw: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> ParsedMessage:
    """Read an incoming message; tolerant of malformed input.

    Raises only `MimeError`: ``not_bytes`` when `raw` is not bytes, ``too_large`` above `max_bytes`,
    ``unreadable`` if the parser itself fails (never seen, kept as the documented single failure).
    """
    if not isinstance(raw, bytes | bytearray):
        raise MimeError("not_bytes", "Le message doit être fourni en octets.")
    if len(raw) > max_bytes:
        raise MimeError("too_large", "Le message dépasse la taille autorisée.")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(bytes(raw))
        headers: dict[str, str] = {}
        for name in msg:
            key = name.lower()
            if key not in headers:
                headers[key] = _header_str(msg, name)
        date: dt.datetime | None = None
        if headers.get("date"):
            try:
                date = parsedate_to_datetime(headers["date"])
            except (TypeError, ValueError, IndexError):
                date = None
        out: dict[str, list] = {"text": [], "html": [], "attachments": []}
        _collect(msg, out)
        kind = _report_kind(msg)
        try:
            content_type = msg.get_content_type()
        except Exception:
            content_type = "text/plain"
        defects = len(msg.defects) + sum(len(part.defects) for part in msg.walk() if part is not msg)
        return ParsedMessage(
            message_id=headers.get("message-id", ""),
            subject=headers.get("subject", ""),
            from_addr=_single_address(headers.get("from", "")),
            to=_address_list(headers.get("to", "")),
            cc=_address_list(headers.get("cc", "")),
            date=date,
            headers=headers,
            text=out["text"][0] if out["text"] else "",
            html=out["html"][0] if out["html"] else "",
            attachments=list(out["attachments"]),
            disposition_notification_to=_single_address(headers.get("disposition-notification-to", "")),
            is_report=kind is not None,
            report_kind=kind,
            content_type=content_type,
            defects=defects,
        )
    except MimeError:
        raise
    except Exception as exc:  # the stdlib parser should not fail, but hostile input must not crash us
        raise MimeError("unreadable", "Le message est illisible.") from exc


def xdm_attachment(parsed: ParsedMessage) -> ParsedAttachment | None:
    """The ``IHE_XDM.zip`` attachment of a message (by name, case-insensitive), if any."""
    for attachment in parsed.attachments:
        if attachment.filename.upper() == xdm.ZIP_FILENAME.upper():
            return attachment
    return None


__all__ = [
    "Attachment",
    "MimeError",
    "ParsedAttachment",
    "ParsedMessage",
    "build_message",
    "is_mssante_address",
    "is_patient_address",
    "is_valid_address",
    "parse_message",
    "sanitize_filename",
    "xdm_attachment",
]
