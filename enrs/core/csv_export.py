"""CSV exports that open cleanly in Excel and LibreOffice, and cannot run formulas.

- `;` as the separator and CRLF line ends (what a French Excel expects);
- a UTF-8 byte order mark first, so Excel reads the accents as UTF-8;
- every cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return
  first) is prefixed with an apostrophe (CSV / formula injection, OWASP);
- rows are streamed: an export of the whole table does not sit in memory.

Used by the audit trail's export and the GCS members' export.
"""

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

# A cell starting with one of these is a formula for Excel / LibreOffice (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def csv_cell(value: Any) -> str:
    """Text for one CSV cell, neutralised when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write() returns what it is given: csv.writer then yields lines."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The lines of an export: BOM and header first, then one line per row, every cell made safe."""
    writer = csv.writer(_Echo(), delimiter=";", lineterminator="\r\n")
    yield "\ufeff" + writer.writerow([csv_cell(v) for v in header])
    for row in rows:
        yield writer.writerow([csv_cell(v) for v in row])


def csv_response(
    filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    """A streamed download of `rows` under `filename` (ASCII, without quotes)."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
