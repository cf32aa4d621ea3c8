"""MTOM/XOP (SOAP 1.2 over multipart/related) packaging: split a request, build a response.

The multipart body is split on its exact delimiter lines (RFC 2046), so binary attachments come out
bit-identical; part headers are read with the stdlib `email` header parser.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from urllib.parse import unquote


class MimeError(ValueError):
    pass


@dataclass
class Package:
    """A SOAP message as received: the envelope bytes and the attachments by Content-ID (no <>)."""

    envelope: bytes
    attachments: dict[str, bytes] = field(default_factory=dict)
    mtom: bool = False


def _content_type(value: str) -> Message:
    msg = Message()
    msg["Content-Type"] = value
    return msg


def media_type(content_type: str) -> str:
    return _content_type(content_type).get_content_type()


def _strip_cid(value: str) -> str:
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value


def split(content_type: str, body: bytes) -> Package:
    """Unpack an HTTP body: plain `application/soap+xml` or MTOM `multipart/related`."""
    header = _content_type(content_type)
    kind = header.get_content_type()
    if kind in ("application/soap+xml", "text/xml", "application/xml"):
        return Package(envelope=body)
    if kind != "multipart/related":
        raise MimeError(f"Type de contenu non pris en charge : {kind}")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MimeError("multipart/related sans paramètre boundary.")
    start = header.get_param("start")
    delimiter = b"\r\n--" + boundary.encode("ascii", "strict")
    chunks = (b"\r\n" + body).split(delimiter)
    parts: list[tuple[Message, bytes]] = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        line_end = chunk.find(b"\r\n")
        if line_end < 0:
            raise MimeError("Partie MIME tronquée.")
        chunk = chunk[line_end + 2 :]
        if chunk.startswith(b"\r\n"):
            raw_headers, content = b"", chunk[2:]
        else:
            raw_headers, sep, content = chunk.partition(b"\r\n\r\n")
            if not sep:
                raise MimeError("Partie MIME sans séparateur d'en-têtes.")
        headers = BytesHeaderParser().parsebytes(raw_headers + b"\r\n\r\n")
        encoding = (headers.get("Content-Transfer-Encoding") or "binary").strip().lower()
        if encoding == "base64":
            try:
                content = base64.b64decode(content, validate=False)
            except binascii.Error as exc:
                raise MimeError("Partie MIME base64 invalide.") from exc
        elif encoding not in ("binary", "8bit", "7bit"):
            raise MimeError(f"Content-Transfer-Encoding non pris en charge : {encoding}")
        parts.append((headers, content))
    if not closed or not parts:
        raise MimeError("multipart/related incomplet (délimiteur final absent).")
    root_index = 0
    if isinstance(start, str) and start:
        wanted = _strip_cid(start)
        matches = [i for i, (h, _) in enumerate(parts) if _strip_cid(h.get("Content-ID", "")) == wanted]
        if not matches:
            raise MimeError("La partie racine désignée par « start » est absente.")
        root_index = matches[0]
    root_headers, envelope = parts[root_index]
    if root_headers.get_content_type() not in ("application/xop+xml", "application/soap+xml"):
        raise MimeError("La partie racine MTOM doit être application/xop+xml.")
    attachments: dict[str, bytes] = {}
    for i, (h, content) in enumerate(parts):
        if i == root_index:
            continue
        cid = _strip_cid(h.get("Content-ID", ""))
        if not cid:
            raise MimeError("Pièce jointe MTOM sans Content-ID.")
        attachments[cid] = content
    return Package(envelope=envelope, attachments=attachments, mtom=True)


def cid_from_href(href: str) -> str:
    if not href.startswith("cid:"):
        raise MimeError(f"Référence xop:Include non prise en charge : {href}")
    return unquote(href[4:])


def build(envelope: bytes, attachments: list[tuple[str, str, bytes]]) -> tuple[str, bytes]:
    """An MTOM message: (Content-Type header, body). `attachments`: (content-id, media type, bytes)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.message@{uuid.uuid4().hex}.dmp-double"
    out = [
        b"--" + boundary.encode() + b"\r\n",
        b'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n',
        b"Content-Transfer-Encoding: binary\r\n",
        b"Content-ID: <" + root_id.encode() + b">\r\n\r\n",
        envelope,
    ]
    for cid, kind, data in attachments:
        out += [
            b"\r\n--" + boundary.encode() + b"\r\n",
            b"Content-Type: " + kind.encode("ascii") + b"\r\n",
            b"Content-Transfer-Encoding: binary\r\n",
            b"Content-ID: <" + cid.encode("ascii") + b">\r\n\r\n",
            data,
        ]
    out.append(b"\r\n--" + boundary.encode() + b"--\r\n")
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"'
    )
    return content_type, b"".join(out)
