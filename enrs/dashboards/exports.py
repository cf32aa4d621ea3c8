"""CSV and XLSX downloads of one chart's table (the same cells as the page: "< 5" where a cell is small)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from openpyxl import Workbook
from openpyxl.styles import Font

from enrs.core.csv_export import csv_cell, csv_response

from .figures import Figure, Filters

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def export_filename(figure: Figure, filters: Filters, extension: str) -> str:
    return f"enrs-{figure.page}-{figure.key}-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.{extension}"


def export_rows(figure: Figure, *, text: bool) -> Iterator[list[Any]]:
    """The table's rows: label first, then each cell (its French text, or its number for a spreadsheet)."""
    for row in figure.rows:
        yield [row.label, *[cell.text if text else cell.export_value for cell in row.cells]]


def filters_description(filters: Filters, labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    labels = labels or {}
    return [
        ("Période", f"du {filters.start:%d/%m/%Y} au {filters.end:%d/%m/%Y}"),
        ("Pas de temps", {"day": "jour", "week": "semaine", "month": "mois"}.get(filters.granularity, "")),
        ("Département", labels.get("department") or filters.department or "tous"),
        ("Catégorie de structure", labels.get("category") or filters.category or "toutes"),
        ("Collège", labels.get("college") or (str(filters.college) if filters.college else "tous")),
        (
            "Membre",
            labels.get("structure") or (str(filters.structure_id) if filters.structure_id else "tous"),
        ),
    ]


def figure_csv(figure: Figure, filters: Filters) -> StreamingHttpResponse:
    return csv_response(
        export_filename(figure, filters, "csv"), figure.columns, export_rows(figure, text=True)
    )


def figure_xlsx_bytes(figure: Figure, filters: Filters, labels: dict[str, str] | None = None) -> bytes:
    """A workbook: the table on the first sheet, the filters, targets and notes on the second."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Données"
    sheet.append([csv_cell(c) for c in figure.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in export_rows(figure, text=False):
        # Text cells go through csv_cell: a label starting with "=" must not become a formula.
        sheet.append([csv_cell(v) if isinstance(v, str) else v for v in row])
    sheet.freeze_panes = "B2"
    sheet.column_dimensions["A"].width = 32
    about = workbook.create_sheet("Filtres et notes")
    about.append(["Tableau", figure.title])
    for name, value in filters_description(filters, labels):
        about.append([name, csv_cell(value)])
    for gap in figure.targets:
        about.append(["Objectif", csv_cell(gap.text)])
    for note in figure.notes:
        about.append(["Note", csv_cell(note)])
    about.append(
        ["Secret statistique", "« < 5 » : valeur calculée sur moins de 5 actes ou événements, masquée."]
    )
    about.append(
        ["Secret secondaire", "« s » : valeur masquée pour qu'un « < 5 » ne se déduise pas par différence."]
    )
    about.column_dimensions["A"].width = 24
    about.column_dimensions["B"].width = 100
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def figure_xlsx(figure: Figure, filters: Filters, labels: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(figure_xlsx_bytes(figure, filters, labels), content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{export_filename(figure, filters, "xlsx")}"'
    return response
