"""Bulk writes of row streams: PostgreSQL ``COPY … FROM STDIN`` (psycopg 3), or ``bulk_create`` elsewhere.

A producer yields ``(table, row)`` pairs; consecutive rows of the same table form one COPY (or one series
of ``bulk_create`` batches), so a producer may interleave tables (e.g. professionals, then their
exercices, chunk after chunk) while nothing but the current batch is held in memory. Rows carry their
primary keys: the producer allocates ids, and :func:`reset_sequences` moves the sequences past them.

Used by ``seed_demo``; the open-data imports of the directory are meant to reuse it.
"""

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from django.core.management.color import no_style
from django.db import connections, models

Row = tuple[Any, ...]
Method = Literal["auto", "copy", "orm"]


@dataclass(frozen=True, eq=False)  # compared by identity: cheap in itertools.groupby
class Table:
    """A model and the fields (attnames, e.g. ``department_id``) of the rows written to it, in order."""

    model: type[models.Model]
    fields: tuple[str, ...]

    @property
    def label(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    def columns(self) -> list[str]:
        """Database column of each field."""
        concrete = {f.attname: f.column for f in self.model._meta.concrete_fields if f.column}
        return [concrete[name] for name in self.fields]

    def copy_sql(self, quote_name: Callable[[str], str]) -> str:
        columns = ", ".join(quote_name(column) for column in self.columns())
        return f"COPY {quote_name(self.model._meta.db_table)} ({columns}) FROM STDIN"


Progress = Callable[[Table, int], None]
PROGRESS_EVERY = 5_000


def _no_progress(table: Table, rows: int) -> None:
    return None


def _batched(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def write_rows(
    stream: Iterable[tuple[Table, Row]],
    *,
    using: str = "default",
    method: Method = "auto",
    progress: Progress | None = None,
    batch_size: int = 2_000,
) -> Counter[type[models.Model]]:
    """Write every row of `stream`; return the number of rows written per model.

    Call it inside ``transaction.atomic()``: it opens no transaction of its own. ``auto`` uses COPY on
    PostgreSQL and ``bulk_create`` on other databases.
    """
    connection = connections[using]
    if method == "auto":
        method = "copy" if connection.vendor == "postgresql" else "orm"
    if method == "copy" and connection.vendor != "postgresql":
        raise ValueError("COPY n'est disponible que sur PostgreSQL.")
    report = progress or _no_progress
    counts: Counter[type[models.Model]] = Counter()
    groups = itertools.groupby(stream, key=itemgetter(0))
    if method == "copy":
        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            for table, group in groups:
                written = 0
                with raw.copy(table.copy_sql(connection.ops.quote_name)) as copy:
                    for _, row in group:
                        copy.write_row(row)
                        written += 1
                        if written % PROGRESS_EVERY == 0:
                            report(table, PROGRESS_EVERY)
                report(table, written % PROGRESS_EVERY)
                counts[table.model] += written
    else:
        for table, group in groups:
            manager = table.model._default_manager.db_manager(using)
            for batch in _batched((row for _, row in group), batch_size):
                manager.bulk_create(
                    [table.model(**dict(zip(table.fields, row, strict=True))) for row in batch]
                )
                report(table, len(batch))
                counts[table.model] += len(batch)
    return counts


def reset_sequences(model_list: Iterable[type[models.Model]], *, using: str = "default") -> None:
    """Move the id sequences past the ids written explicitly (no-op where the database does it itself)."""
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), list(model_list))
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def flush(model_list: Iterable[type[models.Model]], *, using: str = "default") -> None:
    """Empty the tables of `model_list` and restart their ids (TRUNCATE … CASCADE on PostgreSQL).

    Rows of other tables that reference them are deleted too: only for data that may be thrown away.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        # PostgreSQL refuses to TRUNCATE a table with deferred foreign-key checks still pending in the
        # transaction (rows written earlier in it): run those checks now.
        connection.check_constraints()
    tables = [model._meta.db_table for model in model_list]
    statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True)
    connection.ops.execute_sql_flush(statements)
