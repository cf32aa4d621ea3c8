"""The PDF of a telemedicine report (compte rendu), drawn with reportlab. Pure code: no Django import.

``render_report_pdf(data)`` lays out what R.6316-4 asks to record — the act, the patient's identity,
the question, the report, the prescriptions, the participants, date and times, technical incidents —
and the signer. Every text is escaped: nothing a user typed is read as reportlab markup.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

MAX_TEXT = 200_000  # characters of one free-text block laid out in the PDF


@dataclass(frozen=True)
class ReportData:
    title: str  # "Compte rendu de téléexpertise"
    reference: str
    act_type: str
    urgency: str
    patient: list[tuple[str, str]]  # (label, value) lines of the identity, as allowed to be shown
    requester: str
    requester_structure: str
    expert: str
    expert_structure: str
    question: str
    report: str
    prescriptions: str
    signer: str
    signed_at: str
    exchange_mode: str = ""
    consent: str = ""
    times: list[tuple[str, str]] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    issuer: str = "ENRS"


def _text(value: str) -> str:
    """User text as reportlab paragraph markup: escaped, line breaks kept."""
    value = (value or "").replace("\r\n", "\n").replace("\r", "\n")[:MAX_TEXT]
    # Control characters other than newline and tab have no glyph and could break the layout.
    value = "".join(ch for ch in value if ch in "\n\t" or ch >= " ")
    return escape(value).replace("\n", "<br/>")


def _table(rows: list[tuple[str, str]], body: ParagraphStyle, label: ParagraphStyle) -> Table:
    data = [[Paragraph(_text(k), label), Paragraph(_text(v) or "—", body)] for k, v in rows]
    table = Table(data, colWidths=[50 * mm, 120 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def render_report_pdf(data: ReportData) -> bytes:
    """The report as PDF bytes (A4)."""
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName="Helvetica", fontSize=10, leading=13)
    label = ParagraphStyle("label", parent=body, fontName="Helvetica-Bold", alignment=TA_LEFT)
    heading = ParagraphStyle("heading", parent=styles["Heading2"], fontName="Helvetica-Bold", fontSize=12)
    title = ParagraphStyle("title", parent=styles["Title"], fontName="Helvetica-Bold", fontSize=16)

    story: list = [
        Paragraph(_text(data.title), title),
        Paragraph(_text(f"{data.act_type} — {data.urgency} — référence {data.reference}"), body),
        Spacer(1, 4 * mm),
        Paragraph("Patient", heading),
        _table(data.patient, body, label),
        Paragraph("Demande", heading),
        _table(
            [
                ("Professionnel requérant", data.requester),
                ("Structure requérante", data.requester_structure),
                ("Professionnel requis", data.expert),
                ("Structure du requis", data.expert_structure),
                ("Mode d'échange", data.exchange_mode),
                ("Consentement", data.consent),
            ],
            body,
            label,
        ),
        Paragraph("Question clinique", heading),
        Paragraph(_text(data.question) or "—", body),
        Paragraph("Compte rendu", heading),
        Paragraph(_text(data.report) or "—", body),
        Paragraph("Prescriptions", heading),
        Paragraph(_text(data.prescriptions) or "Aucune prescription.", body),
        Paragraph("Date et heures", heading),
        _table(data.times, body, label) if data.times else Paragraph("—", body),
        Paragraph("Participants", heading),
    ]
    if data.participants:
        story += [Paragraph("• " + _text(p), body) for p in data.participants]
    else:
        story.append(Paragraph("—", body))
    story.append(Paragraph("Incidents techniques", heading))
    if data.incidents:
        story += [Paragraph("• " + _text(i), body) for i in data.incidents]
    else:
        story.append(Paragraph("Aucun incident technique.", body))
    story += [
        Spacer(1, 6 * mm),
        Paragraph(_text(f"Signé par {data.signer}, le {data.signed_at}."), label),
    ]

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=data.title,
        author=data.signer,
        creator=data.issuer,
        subject=f"{data.act_type} {data.reference}",
    )
    document.build(story)
    return buffer.getvalue()
