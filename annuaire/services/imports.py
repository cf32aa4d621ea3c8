"""National open-data imports into the directory: the RPPS extraction (``import_rpps_file``) and the FINESS
establishments extraction (``import_finess_file``).

How a run goes (both imports):

1. one pass over the file computes its SHA-256 and detects its encoding (``rpps_extract.EncodingSniffer``);
   an :class:`~annuaire.models.ImportRun` is recorded (status ``running``);
2. in **one transaction**: the header is checked (a file that is not the expected extraction is refused
   before any row is read), then the lines are parsed and streamed, in batches, with ``COPY`` into
   temporary staging tables; rejected lines go to ``ImportRejection`` (line number, reason, excerpt);
3. set-based SQL compares the staging tables with the directory: ``INSERT`` what is new, ``UPDATE`` what
   ``IS DISTINCT FROM`` the file, deactivate what previous imports brought and this file no longer holds,
   and write one ``DirectoryChange`` per created / updated / reactivated / deactivated row, with the
   before/after of each changed field;
4. the run's counts and status, and **one** audit event (``annuaire.import``, with every count), are
   written in the same transaction. Any failure (wrong format, truncated file, mass deactivation refused,
   database error) rolls everything back: the run is then marked ``failed`` with the reason, and an audit
   event with outcome ``failure`` is written; the directory is untouched.

Running the same file twice changes nothing (the second run reports every row as unchanged), because every
write is conditioned on a difference.

Rules of the RPPS import (one line = one activity of one professional):

* a professional is keyed by their IdNat_PS (``Identification nationale PP``); their fields come from their
  first line (the one with the ordinal specialty, ``Code type savoir-faire`` = ``S``, when there is one);
* an activity's structure is found in the directory by FINESS ET, then by RPPS technical id
  (``Structure.rpps_structure_id``), then by SIRET. A structure that is not in the directory is **created**
  (a site with what the line says of it: name, address, sector, and its technical id as key): most
  liberal practices have no FINESS and many no SIRET, so without it their exercices would be lost, and
  the technical id makes the next run find the same row. Existing structures are never modified by the
  RPPS import: the FINESS import owns FINESS sites;
* a professional's exercices are replaced by those of the file — except for a professional with a rejected
  line, whose existing exercices are kept (the file says too little about them to remove anything);
* professionals that an RPPS import brought (``last_import_run`` of kind RPPS), still active, and absent
  from this file are deactivated (never deleted). A professional seen only on rejected lines is not
  absent. Professionals created by hand (no ``last_import_run``) are never deactivated by an import.
  A run that would deactivate more than 5 % of the imported professionals (and more than
  ``MASS_DEACTIVATION_FLOOR``), or all of them, is refused unless ``allow_mass_deactivation``: a partial
  extraction must not empty the directory.

Rules of the FINESS import: a ``structureet`` line is an ET, keyed by its FINESS; ``geolocalisation`` lines
give its coordinates (Lambert-93 converted to latitude/longitude); the file overwrites the fields it
gives and leaves those it does not give (sector, coordinates of a site without geolocation, commune it
cannot resolve); the legal entity is linked when an EJ with that FINESS exists. FINESS sites that a
FINESS import brought and the file no longer lists are deactivated, with the same safeguard.

The imports need PostgreSQL (``COPY``, ``DISTINCT ON``, ``jsonb``): on the SQLite demo database they refuse
with a clear message (the demo is loaded by ``seed_demo`` instead).
"""

# S608: the SQL below splices only names of this run's staging tables (``import_<kind>_<name>_<run id>``)
# and fragments built from constants of this module; every value from a file goes through COPY or a bound
# parameter.
# ruff: noqa: S608

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from enrs.audit.models import AuditEvent
from enrs.audit.services import audit_record
from enrs.usage.services import usage_emit

from ..bulk import Table, write_rows
from ..models import ImportKind, ImportRejection, ImportRun, ImportStatus
from ..standards import finess_extract, rpps_extract
from ..standards.nomenclatures import nomenclatures
from ..standards.rpps_extract import ActivityRecord, ExtractFormatError, Line, Rejection

AUDIT_ACTION = "annuaire.import"
DEACTIVATED_FIELDS = '{"is_active": {"before": true, "after": false}}'
BATCH_SIZE = 20_000  # lines parsed before their COPY
HASH_CHUNK = 1 << 20
# A run may deactivate at most this share of the professionals / sites that imports brought, and never
# more than the floor when the share is smaller, unless told so explicitly.
MASS_DEACTIVATION_SHARE = 0.05
MASS_DEACTIVATION_FLOOR = 500
POSTGRESQL_ONLY = (
    "Les imports RPPS et FINESS demandent PostgreSQL (COPY et requêtes ensemblistes) : la base de "
    "démonstration SQLite ne les prend pas en charge (elle se charge avec seed_demo)."
)
# Progress phases, reported as (phase, done, total): bytes for the two passes over the file, steps after.
PHASE_CHECK = "Vérification du fichier"
PHASE_READ = "Lecture des lignes"
PHASE_APPLY = "Mise à jour de l'annuaire"

Progress = Callable[[str, int, int | None], None]
REJECTIONS = Table(ImportRejection, ("run_id", "line_number", "reason", "raw"))
_LOCK_KEYS = {ImportKind.RPPS: 0x656E7273_72707073, ImportKind.FINESS: 0x656E7273_66696E73}  # "enrsrpps"…


class ImportFailed(Exception):
    """The file was not imported; `message` is for the operator (French), `run` the failed run if any."""

    def __init__(self, message: str, run: ImportRun | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.run = run


class _Refused(Exception):
    """A rule refuses the import (message in French); raised inside the transaction to roll it back."""


def _silent(phase: str, done: int, total: int | None) -> None:
    return None


# --- Entry points ----------------------------------------------------------------------------------------


def import_rpps_file(
    *,
    path: str | Path,
    actor: Any = None,
    progress: Progress | None = None,
    allow_mass_deactivation: bool = False,
) -> ImportRun:
    """Import a ``PS_LibreAcces_Personne_activite`` extraction and return the run.

    Raises :class:`ImportFailed` (French message) when the file is refused; the run is then recorded as
    failed.
    """
    return _run_import(
        kind=ImportKind.RPPS,
        path=Path(path),
        actor=actor,
        progress=progress or _silent,
        loader=lambda run, encoding, now: _RppsLoad(run, encoding, now, allow_mass_deactivation),
    )


def import_finess_file(
    *,
    path: str | Path,
    actor: Any = None,
    progress: Progress | None = None,
    allow_mass_deactivation: bool = False,
) -> ImportRun:
    """Import a FINESS establishments extraction; return the run (raises :class:`ImportFailed`)."""
    return _run_import(
        kind=ImportKind.FINESS,
        path=Path(path),
        actor=actor,
        progress=progress or _silent,
        loader=lambda run, encoding, now: _FinessLoad(run, encoding, now, allow_mass_deactivation),
    )


def import_summary(run: ImportRun) -> dict[str, Any]:
    """Every count of a run (structures created, exercices added …) as written in its audit event."""
    event = (
        AuditEvent.objects.filter(
            action=AUDIT_ACTION, target_type=ImportRun._meta.label_lower, target_id=str(run.pk)
        )
        .order_by("-id")
        .values_list("detail", flat=True)
        .first()
    )
    return dict(event or {})


# --- The run ---------------------------------------------------------------------------------------------


@dataclass
class _Counts:
    read: int = 0
    rejected: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    extra: dict[str, int] | None = None


class _Load:
    """What both imports share: streaming the lines into staging tables, then applying them."""

    kind: ImportKind
    steps: tuple[str, ...] = ()

    def __init__(self, run: ImportRun, encoding: str, now: Any, allow_mass_deactivation: bool) -> None:
        self.run = run
        self.encoding = encoding
        self.now = now
        self.allow_mass_deactivation = allow_mass_deactivation
        self.counts = _Counts(extra={})
        self.suffix = f"{run.pk}"
        self._tables: set[str] = set()

    # Streaming ---------------------------------------------------------------------------------------

    def load(self, path: Path, size: int, progress: Progress) -> _Counts:
        read_bytes = 0

        def on_bytes(count: int) -> None:
            nonlocal read_bytes
            read_bytes += count
            progress(PHASE_READ, read_bytes, size)

        with path.open("rb") as stream:
            lines = rpps_extract.iter_lines(stream, self.encoding, on_bytes=on_bytes)
            first = next(lines, None)
            if first is None or first.text is None or not first.text.strip():
                raise ExtractFormatError(
                    "Fichier vide ou première ligne illisible : ce n'est pas l'extraction attendue."
                )
            self.read_header(first.text)
            self.create_staging()
            self.stream(lines)
        self.apply(progress)
        self.drop_staging()
        return self.counts

    def stream(self, lines: Iterator[Line]) -> None:
        records: list[object] = []
        rejections: list[Rejection] = []
        last: Line | None = None
        outcome: object = None
        for line in lines:
            if line.text is None:
                outcome = rpps_extract.undecodable(line, self.encoding)
            elif not line.text.strip():
                continue
            else:
                outcome = self.parse(line.number, line.text)
            last = line
            self.counts.read += 1
            if isinstance(outcome, Rejection):
                rejections.append(outcome)
            else:
                records.append(outcome)
            if len(records) + len(rejections) >= BATCH_SIZE:
                self.flush(records, rejections)
                records, rejections = [], []
        rpps_extract.check_not_truncated(last, outcome)
        self.flush(records, rejections)

    def flush(self, records: list[Any], rejections: list[Rejection]) -> None:
        if records:
            self.write_records(records)
        if rejections:
            self.counts.rejected += len(rejections)
            write_rows(
                (REJECTIONS, (self.run.pk, r.line, r.reason[:255], r.raw.replace("\x00", "")))
                for r in rejections
            )
            keys = [(r.key,) for r in rejections if r.key]
            if keys:
                _copy(self.table("rejected"), ("key",), keys)

    # To implement -------------------------------------------------------------------------------------

    def read_header(self, text: str) -> None:
        raise NotImplementedError

    def parse(self, number: int, text: str) -> object:
        raise NotImplementedError

    def create_staging(self) -> None:
        raise NotImplementedError

    def write_records(self, records: list[Any]) -> None:
        raise NotImplementedError

    def apply(self, progress: Progress) -> None:
        raise NotImplementedError

    # Helpers -----------------------------------------------------------------------------------------

    def table(self, name: str) -> str:
        """Name of a staging table of this run (temporary, dropped at commit or by drop_staging)."""
        table = f"import_{self.kind.value}_{name}_{self.suffix}"
        self._tables.add(table)
        return table

    def drop_staging(self) -> None:
        """Drop the staging tables now (they would go at commit, but a test's outer transaction lasts)."""
        if self._tables:
            _execute(f"DROP TABLE IF EXISTS {', '.join(sorted(self._tables))}")
            self._tables.clear()

    def step(self, progress: Progress, name: str) -> None:
        progress(PHASE_APPLY, self.steps.index(name), len(self.steps))

    def check_deactivations(self, count: int, known: int, what: str) -> None:
        """Refuse to deactivate more than the share (and the floor), or everything that imports brought."""
        limit = max(MASS_DEACTIVATION_FLOOR, int(MASS_DEACTIVATION_SHARE * known))
        everything = known > 0 and count >= known
        if (count > limit or everything) and not self.allow_mass_deactivation:
            raise _Refused(
                f"Ce fichier ferait désactiver {count} {what} sur {known} venus des imports précédents "
                f"(plus de {MASS_DEACTIVATION_SHARE:.0%}) : extraction partielle ? Rien n'a été importé. "
                "Si c'est voulu, relancez avec --allow-mass-deactivation."
            )


def _run_import(
    *, kind: ImportKind, path: Path, actor: Any, progress: Progress, loader: Callable[..., _Load]
) -> ImportRun:
    if connection.vendor != "postgresql":
        raise ImportFailed(POSTGRESQL_ONLY)
    if not path.is_file():
        raise ImportFailed(f"Fichier introuvable : {path}")
    size = path.stat().st_size
    digest, encoding = _fingerprint(path, size, progress)
    run = ImportRun.objects.create(
        kind=kind, file_name=path.name[:255], file_sha256=digest, encoding=encoding, actor=actor
    )
    started = time.perf_counter()
    try:
        with transaction.atomic():
            _lock(kind)
            load = loader(run, encoding, timezone.now())
            counts = load.load(path, size, progress)
            run.status = ImportStatus.SUCCEEDED
            run.finished_at = timezone.now()
            run.rows_read, run.rows_rejected = counts.read, counts.rejected
            run.rows_created, run.rows_updated = counts.created, counts.updated
            run.rows_unchanged, run.rows_deactivated = counts.unchanged, counts.deactivated
            run.save()
            usage_emit(
                "annuaire.import",
                value=float(run.rows_read),
                dims={"import_kind": run.kind, "status": "succeeded", "rejected": run.rows_rejected},
                actor=actor,
            )
            audit_record(
                action=AUDIT_ACTION,
                actor=actor,
                target=run,
                detail={
                    **_run_detail(run),
                    **(counts.extra or {}),
                    "duration_s": round(time.perf_counter() - started, 3),
                },
            )
    except (ExtractFormatError, _Refused) as error:
        _record_failure(run, str(error), actor)
        raise ImportFailed(str(error), run) from error
    except Exception as error:
        _record_failure(run, f"Erreur inattendue ({type(error).__name__}) : rien n'a été importé.", actor)
        raise
    return run


def _run_detail(run: ImportRun) -> dict[str, Any]:
    return {
        "kind": run.kind,
        "file_name": run.file_name,
        "file_sha256": run.file_sha256,
        "encoding": run.encoding,
        "rows_read": run.rows_read,
        "rows_rejected": run.rows_rejected,
        "created": run.rows_created,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "deactivated": run.rows_deactivated,
    }


def _record_failure(run: ImportRun, message: str, actor: Any) -> None:
    with transaction.atomic():
        ImportRun.objects.filter(pk=run.pk).update(
            status=ImportStatus.FAILED,
            error=message,
            finished_at=timezone.now(),
            rows_read=0,
            rows_rejected=0,
            rows_created=0,
            rows_updated=0,
            rows_unchanged=0,
            rows_deactivated=0,
        )
        run.refresh_from_db()
        usage_emit(
            "annuaire.import", value=0.0, dims={"import_kind": run.kind, "status": "failed"}, actor=actor
        )
        audit_record(
            action=AUDIT_ACTION,
            actor=actor,
            target=run,
            outcome="failure",
            detail={
                "kind": run.kind,
                "file_name": run.file_name,
                "file_sha256": run.file_sha256,
                "error": message,
            },
        )


def _fingerprint(path: Path, size: int, progress: Progress) -> tuple[str, str]:
    """SHA-256 and encoding of the file, in one pass."""
    digest = hashlib.sha256()
    sniffer = rpps_extract.EncodingSniffer()
    done = 0
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
            sniffer.feed(chunk)
            done += len(chunk)
            progress(PHASE_CHECK, done, size)
    return digest.hexdigest(), sniffer.encoding()


def _lock(kind: ImportKind) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEYS[kind]])
        row = cursor.fetchone()
        if not (row and row[0]):
            raise _Refused(
                f"Un import {ImportKind(kind).label} est déjà en cours : réessayez quand il sera fini."
            )
        # Sorts and hashes of a million rows: more memory than the 4 MB default, for this transaction only.
        cursor.execute("SET LOCAL work_mem = '256MB'")


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _execute(sql: str, params: dict[str, Any] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


def _scalar(sql: str, params: dict[str, Any] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def _diff(fields: Sequence[tuple[str, str, str]]) -> tuple[str, str]:
    """SQL for the changes between `before` and `after` expressions: a jsonb object ``{field: {"before",
    "after"}}`` of the fields that differ, and the condition "at least one differs"."""
    parts = [
        f"CASE WHEN {before} IS DISTINCT FROM {after} THEN jsonb_build_object('{name}', "
        f"jsonb_build_object('before', {before}, 'after', {after})) ELSE '{{}}'::jsonb END"
        for name, before, after in fields
    ]
    condition = " OR ".join(f"{before} IS DISTINCT FROM {after}" for _, before, after in fields)
    return "(" + " || ".join(parts) + ")", "(" + condition + ")"


# --- RPPS ------------------------------------------------------------------------------------------------

_RPPS_ROW_COLUMNS = (
    "line", "idnat", "identifier_type", "rpps", "adeli", "rpps_key_valid", "civility_code", "last_name",
    "first_name", "profession_code", "profession_label", "category_code", "specialty_code",
    "specialty_label", "specialty_rank", "site_key", "finess_et", "finess_ej", "siret", "siren",
    "technical_id", "site_name", "address_line", "postal_code", "commune_code", "sector_code",
    "sector_label", "role_code", "exercise_mode",
)  # fmt: skip
# Professional fields an import writes, compared one by one.
_PROFESSIONAL_FIELDS = (
    "civility_code", "last_name", "first_name", "profession_code", "profession_label", "category_code",
    "specialty_code", "specialty_label",
)  # fmt: skip
_NO_SITE = ("",) * 11


class _RppsLoad(_Load):
    kind = ImportKind.RPPS
    steps = ("structures", "professionnels", "exercices", "modifications", "désactivations")

    def read_header(self, text: str) -> None:
        self.parser = rpps_extract.RppsRowParser(rpps_extract.parse_header(text), nomenclatures())

    def parse(self, number: int, text: str) -> object:
        return self.parser.parse(number, text)

    def create_staging(self) -> None:
        _execute(
            f"""CREATE TEMP TABLE {self.table("row")} (
                line integer NOT NULL, idnat text NOT NULL, identifier_type text NOT NULL, rpps text NOT NULL,
                adeli text NOT NULL, rpps_key_valid boolean NOT NULL, civility_code text NOT NULL,
                last_name text NOT NULL, first_name text NOT NULL, profession_code text NOT NULL,
                profession_label text NOT NULL, category_code text NOT NULL, specialty_code text NOT NULL,
                specialty_label text NOT NULL, specialty_rank smallint NOT NULL, site_key text,
                finess_et text NOT NULL, finess_ej text NOT NULL, siret text NOT NULL, siren text NOT NULL,
                technical_id text NOT NULL, site_name text NOT NULL, address_line text NOT NULL,
                postal_code text NOT NULL, commune_code text NOT NULL, sector_code text NOT NULL,
                sector_label text NOT NULL, role_code text NOT NULL, exercise_mode text NOT NULL
            ) ON COMMIT DROP"""
        )
        _execute(f"CREATE TEMP TABLE {self.table('rejected')} (key text NOT NULL) ON COMMIT DROP")

    def write_records(self, records: list[ActivityRecord]) -> None:
        _copy(self.table("row"), _RPPS_ROW_COLUMNS, (self._row(record) for record in records))

    @staticmethod
    def _row(r: ActivityRecord) -> tuple[Any, ...]:
        site = r.site
        site_fields = (
            _NO_SITE
            if site is None
            else (
                site.finess_et, site.finess_ej, site.siret, site.siren, site.technical_id, site.name,
                site.address_line, site.postal_code, site.commune_code, site.sector_code, site.sector_label,
            )
        )  # fmt: skip
        return (
            r.line, r.idnat_ps, r.identifier_type, r.rpps, r.adeli, r.rpps_key_valid, r.civility_code,
            r.last_name, r.first_name, r.profession_code, r.profession_label, r.category_code,
            r.specialty_code, r.specialty_label, r.specialty_rank, None if site is None else site.key,
            *site_fields, r.role_code, r.exercise_mode,
        )  # fmt: skip

    def apply(self, progress: Progress) -> None:
        rows, rejected = self.table("row"), self.table("rejected")
        pro, site, ex, sig = self.table("pro"), self.table("site"), self.table("ex"), self.table("sig")
        changed, gone = self.table("changed"), self.table("gone")
        p = {"run": self.run.pk, "now": self.now, "deactivated": DEACTIVATED_FIELDS}
        extra = self.counts.extra if self.counts.extra is not None else {}

        known = _scalar(
            """SELECT count(*) FROM annuaire_professional p
               JOIN annuaire_importrun r ON r.id = p.last_import_run_id
               WHERE p.is_active AND r.kind = 'rpps'"""
        )
        _execute(f"CREATE INDEX ON {rows} (site_key)")
        _execute(f"CREATE INDEX ON {rejected} (key)")
        _execute(f"ANALYZE {rows}")
        _execute(f"ANALYZE {rejected}")

        # Structures: find each site of the file in the directory, create those that are not there.
        self.step(progress, "structures")
        _execute(
            f"""CREATE TEMP TABLE {site} ON COMMIT DROP AS
                SELECT DISTINCT ON (site_key) site_key, finess_et, finess_ej, siret, siren, technical_id,
                       site_name, address_line, postal_code, commune_code, sector_code, sector_label,
                       NULL::bigint AS structure_id
                FROM {rows} WHERE site_key IS NOT NULL ORDER BY site_key, line"""
        )
        _execute(f"CREATE UNIQUE INDEX ON {site} (site_key)")
        created_structures = 0
        for wave in ("technical_id <> '' OR finess_et <> ''", "siret <> ''"):
            self._resolve_sites(site)
            created_structures += _execute(
                f"""WITH candidate AS (
                        SELECT DISTINCT ON (CASE WHEN finess_et <> '' THEN finess_et ELSE site_key END) *
                        FROM {site} WHERE structure_id IS NULL AND ({wave})
                        ORDER BY CASE WHEN finess_et <> '' THEN finess_et ELSE site_key END, site_key
                    ), created AS (
                        INSERT INTO annuaire_structure (
                            kind, finess_ej, finess_et, legal_entity_id, siren, siret, name, category_code,
                            category_label, sector_code, sector_label, address_line, postal_code, commune_id,
                            is_active, created_at, updated_at, rpps_structure_id, last_import_run_id)
                        SELECT 'ET', c.finess_ej, NULLIF(c.finess_et, ''), ej.id, c.siren, c.siret,
                               c.site_name, '', '', c.sector_code, c.sector_label, c.address_line,
                               c.postal_code, co.id, true, %(now)s, %(now)s, NULLIF(c.technical_id, ''),
                               %(run)s
                        FROM candidate c
                        LEFT JOIN annuaire_commune co ON co.insee_code = c.commune_code
                        LEFT JOIN annuaire_structure ej
                            ON ej.kind = 'EJ' AND c.finess_ej <> '' AND ej.finess_ej = c.finess_ej
                        RETURNING id
                    )
                    INSERT INTO annuaire_directorychange (run_id, kind, structure_id, fields)
                    SELECT %(run)s, 'created', id, '{{}}'::jsonb FROM created""",
                p,
            )
        self._resolve_sites(site)
        unresolved = _scalar(f"SELECT count(*) FROM {site} WHERE structure_id IS NULL")
        if unresolved:  # every site has a FINESS, a technical id or a SIRET: cannot happen
            raise RuntimeError(f"{unresolved} sites sans structure après création.")
        extra["structures_created"] = created_structures

        # Professionals: one per IdNat_PS, from its first line (ordinal specialty first).
        self.step(progress, "professionnels")
        _execute(
            f"""CREATE TEMP TABLE {pro} ON COMMIT DROP AS
                SELECT d.*, p.id AS professional_id, p.id IS NULL AS is_new
                FROM (SELECT DISTINCT ON (idnat) idnat, identifier_type, rpps, adeli, rpps_key_valid,
                             civility_code, last_name, first_name, profession_code, profession_label,
                             category_code, specialty_code, specialty_label
                      FROM {rows} ORDER BY idnat, specialty_rank, line) d
                LEFT JOIN annuaire_professional p ON p.idnat_ps = d.idnat"""
        )
        self.counts.created = _execute(
            f"""WITH created AS (
                    INSERT INTO annuaire_professional (
                        idnat_ps, identifier_type, rpps, adeli, civility_code, last_name, first_name,
                        profession_code, profession_label, category_code, specialty_code, specialty_label,
                        is_active, rpps_key_valid, created_at, updated_at, last_import_run_id)
                    SELECT idnat, identifier_type, rpps, adeli, civility_code, last_name, first_name,
                           profession_code, profession_label, category_code, specialty_code, specialty_label,
                           true, rpps_key_valid, %(now)s, %(now)s, %(run)s
                    FROM {pro} WHERE is_new ORDER BY idnat
                    RETURNING id
                )
                INSERT INTO annuaire_directorychange (run_id, kind, professional_id, fields)
                SELECT %(run)s, 'created', id, '{{}}'::jsonb FROM created""",
            p,
        )
        _execute(
            f"""UPDATE {pro} s SET professional_id = p.id FROM annuaire_professional p
                WHERE s.is_new AND p.idnat_ps = s.idnat"""
        )
        _execute(f"CREATE UNIQUE INDEX ON {pro} (idnat)")
        _execute(f"CREATE UNIQUE INDEX ON {pro} (professional_id)")
        _execute(f"ANALYZE {pro}")

        # Exercices the file gives (plus, for professionals with a rejected line, those they already have).
        self.step(progress, "exercices")
        _execute(
            f"""CREATE TEMP TABLE {ex} ON COMMIT DROP AS
                SELECT DISTINCT ON (s.professional_id, t.structure_id, r.role_code)
                       s.professional_id, t.structure_id, r.role_code, r.exercise_mode
                FROM {rows} r JOIN {site} t ON t.site_key = r.site_key JOIN {pro} s ON s.idnat = r.idnat
                ORDER BY s.professional_id, t.structure_id, r.role_code, r.line"""
        )
        _execute(
            f"""INSERT INTO {ex} (professional_id, structure_id, role_code, exercise_mode)
                SELECT e.professional_id, e.structure_id, e.role_code, e.exercise_mode
                FROM annuaire_exercice e JOIN {pro} s ON s.professional_id = e.professional_id
                WHERE NOT s.is_new AND EXISTS (SELECT 1 FROM {rejected} x WHERE x.key = s.idnat)
                  AND NOT EXISTS (SELECT 1 FROM {ex} t WHERE t.professional_id = e.professional_id
                                  AND t.structure_id = e.structure_id AND t.role_code = e.role_code)"""
        )
        _execute(f"CREATE INDEX ON {ex} (professional_id, structure_id, role_code)")
        _execute(f"ANALYZE {ex}")
        signature = "string_agg({t}.structure_id || ':' || {t}.role_code || ':' || {t}.exercise_mode, ' ' "
        signature += "ORDER BY {t}.structure_id, {t}.role_code)"
        # Known professionals whose exercices differ from the file's.
        _execute(
            f"""CREATE TEMP TABLE {sig} ON COMMIT DROP AS
                SELECT coalesce(b.professional_id, a.professional_id) AS professional_id
                FROM (SELECT e.professional_id, {signature.format(t="e")} AS sig
                      FROM annuaire_exercice e JOIN {pro} s ON s.professional_id = e.professional_id
                      WHERE NOT s.is_new GROUP BY e.professional_id) b
                FULL JOIN (SELECT x.professional_id, {signature.format(t="x")} AS sig
                           FROM {ex} x JOIN {pro} s ON s.professional_id = x.professional_id
                           WHERE NOT s.is_new GROUP BY x.professional_id) a
                    ON a.professional_id = b.professional_id
                WHERE b.sig IS DISTINCT FROM a.sig"""
        )
        _execute(f"CREATE UNIQUE INDEX ON {sig} (professional_id)")

        # Changed professionals: fields, reactivation, exercices; then the change log, then the writes.
        self.step(progress, "modifications")
        exercices = (
            "(SELECT coalesce(jsonb_agg(jsonb_build_object('structure', {t}.structure_id, "
            "'role', {t}.role_code, 'mode', {t}.exercise_mode) ORDER BY {t}.structure_id, {t}.role_code), "
            "'[]'::jsonb) FROM {table} {t} WHERE {t}.professional_id = p.id)"
        )
        fields, differs = _diff(
            [
                *((name, f"p.{name}", f"s.{name}") for name in _PROFESSIONAL_FIELDS),
                ("is_active", "p.is_active", "true"),
            ]
        )
        _execute(
            f"""CREATE TEMP TABLE {changed} ON COMMIT DROP AS
                SELECT p.id, NOT p.is_active AS reactivated,
                       {fields} || CASE WHEN g.professional_id IS NULL THEN '{{}}'::jsonb
                           ELSE jsonb_build_object('exercices', jsonb_build_object(
                               'before', {exercices.format(t="e", table="annuaire_exercice")},
                               'after', {exercices.format(t="x", table=ex)})) END AS fields
                FROM {pro} s JOIN annuaire_professional p ON p.id = s.professional_id
                LEFT JOIN {sig} g ON g.professional_id = p.id
                WHERE NOT s.is_new AND ({differs} OR g.professional_id IS NOT NULL)"""
        )
        assignments = ", ".join(f"{name} = s.{name}" for name in _PROFESSIONAL_FIELDS)
        _execute(
            f"""UPDATE annuaire_professional p SET {assignments}, is_active = true, updated_at = %(now)s,
                       last_import_run_id = %(run)s
                FROM {changed} c JOIN {pro} s ON s.professional_id = c.id WHERE p.id = c.id""",
            p,
        )
        self.counts.updated = _execute(
            f"""INSERT INTO annuaire_directorychange (run_id, kind, professional_id, fields)
                SELECT %(run)s, CASE WHEN reactivated THEN 'reactivated' ELSE 'updated' END, id, fields
                FROM {changed} ORDER BY id""",
            p,
        )
        # Exercices of new professionals and of those whose exercices changed.
        extra["exercices_removed"] = _execute(
            f"""DELETE FROM annuaire_exercice e USING {sig} g
                WHERE e.professional_id = g.professional_id AND NOT EXISTS (
                    SELECT 1 FROM {ex} x WHERE x.professional_id = e.professional_id
                    AND x.structure_id = e.structure_id AND x.role_code = e.role_code)"""
        )
        extra["exercices_updated"] = _execute(
            f"""UPDATE annuaire_exercice e SET exercise_mode = x.exercise_mode
                FROM {ex} x JOIN {sig} g ON g.professional_id = x.professional_id
                WHERE e.professional_id = x.professional_id AND e.structure_id = x.structure_id
                  AND e.role_code = x.role_code AND e.exercise_mode <> x.exercise_mode"""
        )
        extra["exercices_added"] = _execute(
            f"""INSERT INTO annuaire_exercice (
                    professional_id, structure_id, role_code, exercise_mode, created_at)
                SELECT x.professional_id, x.structure_id, x.role_code, x.exercise_mode, %(now)s
                FROM {ex} x JOIN {pro} s ON s.professional_id = x.professional_id
                WHERE s.is_new OR EXISTS (SELECT 1 FROM {sig} g WHERE g.professional_id = x.professional_id)
                ORDER BY x.professional_id, x.structure_id, x.role_code
                ON CONFLICT (professional_id, structure_id, role_code) DO NOTHING""",
            p,
        )
        # Professionals entered by hand that the file confirms: from now on, imports keep them up to date.
        _execute(
            f"""UPDATE annuaire_professional p SET last_import_run_id = %(run)s FROM {pro} s
                WHERE p.id = s.professional_id AND p.last_import_run_id IS NULL""",
            p,
        )
        in_file = _scalar(f"SELECT count(*) FROM {pro}")
        self.counts.unchanged = in_file - self.counts.created - self.counts.updated

        # Professionals that imports brought and that are no longer in the file.
        self.step(progress, "désactivations")
        _execute(
            f"""CREATE TEMP TABLE {gone} ON COMMIT DROP AS
                SELECT p.id FROM annuaire_professional p
                JOIN annuaire_importrun r ON r.id = p.last_import_run_id AND r.kind = 'rpps'
                WHERE p.is_active
                  AND NOT EXISTS (SELECT 1 FROM {pro} s WHERE s.idnat = p.idnat_ps)
                  AND NOT EXISTS (SELECT 1 FROM {rejected} x WHERE x.key = p.idnat_ps)"""
        )
        self.check_deactivations(_scalar(f"SELECT count(*) FROM {gone}"), known, "professionnels")
        _execute(
            f"""UPDATE annuaire_professional p SET is_active = false, updated_at = %(now)s,
                       last_import_run_id = %(run)s
                FROM {gone} g WHERE p.id = g.id""",
            p,
        )
        self.counts.deactivated = _execute(
            f"""INSERT INTO annuaire_directorychange (run_id, kind, professional_id, fields)
                SELECT %(run)s, 'deactivated', id, %(deactivated)s::jsonb FROM {gone} ORDER BY id""",
            p,
        )

    @staticmethod
    def _resolve_sites(site: str) -> None:
        """Link the sites of the file to structures of the directory: FINESS ET, technical id, SIRET."""
        _execute(
            f"""UPDATE {site} s SET structure_id = st.id FROM annuaire_structure st
                WHERE s.structure_id IS NULL AND s.finess_et <> '' AND st.finess_et = s.finess_et"""
        )
        _execute(
            f"""UPDATE {site} s SET structure_id = st.id FROM annuaire_structure st
                WHERE s.structure_id IS NULL AND s.technical_id <> ''
                  AND st.rpps_structure_id = s.technical_id"""
        )
        _execute(
            f"""UPDATE {site} s SET structure_id = m.id
                FROM (SELECT DISTINCT ON (siret) siret, id FROM annuaire_structure
                      WHERE siret <> '' AND kind = 'ET' ORDER BY siret, is_active DESC, id) m
                WHERE s.structure_id IS NULL AND s.siret <> '' AND m.siret = s.siret"""
        )


# --- FINESS ----------------------------------------------------------------------------------------------

_FINESS_ROW_COLUMNS = (
    "line", "finess_et", "finess_ej", "name", "address_line", "postal_code", "commune_code", "category_code",
    "category_label", "siret", "siren",
)  # fmt: skip
_FINESS_GEO_COLUMNS = ("line", "finess_et", "latitude", "longitude")
# Structure fields the FINESS file gives: always overwritten.
_STRUCTURE_FIELDS = (
    "finess_ej", "siret", "siren", "name", "category_code", "category_label", "address_line", "postal_code",
)  # fmt: skip
# Fields the file may not give: overwritten when it does, kept when it does not.
_STRUCTURE_OPTIONAL_FIELDS = ("commune_id", "latitude", "longitude", "legal_entity_id")


class _FinessLoad(_Load):
    kind = ImportKind.FINESS
    steps = ("établissements", "modifications", "désactivations")

    def read_header(self, text: str) -> None:
        self.header = finess_extract.parse_header(text)
        self.parser = finess_extract.FinessRowParser()

    def parse(self, number: int, text: str) -> object:
        return self.parser.parse(number, text)

    def create_staging(self) -> None:
        _execute(
            f"""CREATE TEMP TABLE {self.table("row")} (
                line integer NOT NULL, finess_et text NOT NULL, finess_ej text NOT NULL, name text NOT NULL,
                address_line text NOT NULL, postal_code text NOT NULL, commune_code text NOT NULL,
                category_code text NOT NULL, category_label text NOT NULL, siret text NOT NULL,
                siren text NOT NULL
            ) ON COMMIT DROP"""
        )
        _execute(
            f"""CREATE TEMP TABLE {self.table("geo")} (
                line integer NOT NULL, finess_et text NOT NULL, latitude double precision,
                longitude double precision
            ) ON COMMIT DROP"""
        )
        _execute(f"CREATE TEMP TABLE {self.table('rejected')} (key text NOT NULL) ON COMMIT DROP")

    def write_records(self, records: list[Any]) -> None:
        sites = [r for r in records if isinstance(r, finess_extract.FinessSite)]
        geos = [r for r in records if isinstance(r, finess_extract.FinessGeo)]
        if sites:
            _copy(
                self.table("row"),
                _FINESS_ROW_COLUMNS,
                (
                    (s.line, s.finess_et, s.finess_ej, s.name, s.address_line, s.postal_code, s.commune_code,
                     s.category_code, s.category_label, s.siret, s.siren)
                    for s in sites
                ),
            )  # fmt: skip
        if geos:
            _copy(
                self.table("geo"),
                _FINESS_GEO_COLUMNS,
                ((g.line, g.finess_et, g.latitude, g.longitude) for g in geos),
            )

    def apply(self, progress: Progress) -> None:
        rows, geo, rejected = self.table("row"), self.table("geo"), self.table("rejected")
        site, changed, gone = self.table("site"), self.table("changed"), self.table("gone")
        p = {"run": self.run.pk, "now": self.now, "deactivated": DEACTIVATED_FIELDS}
        extra = self.counts.extra if self.counts.extra is not None else {}
        known = _scalar(
            """SELECT count(*) FROM annuaire_structure st
               JOIN annuaire_importrun r ON r.id = st.last_import_run_id
               WHERE st.is_active AND r.kind = 'finess'"""
        )
        self.step(progress, "établissements")
        _execute(
            f"""CREATE TEMP TABLE {site} ON COMMIT DROP AS
                SELECT r.*, g.latitude, g.longitude, co.id AS commune_id, ej.id AS legal_entity_id,
                       st.id AS structure_id, st.id IS NULL AS is_new
                FROM {rows} r
                LEFT JOIN (SELECT DISTINCT ON (finess_et) finess_et, latitude, longitude FROM {geo}
                           WHERE latitude IS NOT NULL ORDER BY finess_et, line) g ON g.finess_et = r.finess_et
                LEFT JOIN annuaire_commune co ON r.commune_code <> '' AND co.insee_code = r.commune_code
                LEFT JOIN annuaire_structure ej
                    ON ej.kind = 'EJ' AND r.finess_ej <> '' AND ej.finess_ej = r.finess_ej
                LEFT JOIN annuaire_structure st ON st.finess_et = r.finess_et"""
        )
        _execute(f"CREATE UNIQUE INDEX ON {site} (finess_et)")
        _execute(f"CREATE INDEX ON {rejected} (key)")
        extra["geolocated"] = _scalar(f"SELECT count(*) FROM {site} WHERE latitude IS NOT NULL")
        self.counts.created = _execute(
            f"""WITH created AS (
                    INSERT INTO annuaire_structure (
                        kind, finess_ej, finess_et, legal_entity_id, siren, siret, name, category_code,
                        category_label, sector_code, sector_label, address_line, postal_code, commune_id,
                        latitude, longitude, is_active, created_at, updated_at, last_import_run_id)
                    SELECT 'ET', finess_ej, finess_et, legal_entity_id, siren, siret, name, category_code,
                           category_label, '', '', address_line, postal_code, commune_id, latitude, longitude,
                           true, %(now)s, %(now)s, %(run)s
                    FROM {site} WHERE is_new ORDER BY finess_et
                    RETURNING id
                )
                INSERT INTO annuaire_directorychange (run_id, kind, structure_id, fields)
                SELECT %(run)s, 'created', id, '{{}}'::jsonb FROM created""",
            p,
        )

        self.step(progress, "modifications")
        fields, differs = _diff(
            [
                *((name, f"st.{name}", f"s.{name}") for name in _STRUCTURE_FIELDS),
                *(
                    (name, f"st.{name}", f"coalesce(s.{name}, st.{name})")
                    for name in _STRUCTURE_OPTIONAL_FIELDS
                ),
                ("is_active", "st.is_active", "true"),
            ]
        )
        _execute(
            f"""CREATE TEMP TABLE {changed} ON COMMIT DROP AS
                SELECT st.id, NOT st.is_active AS reactivated, {fields} AS fields
                FROM {site} s JOIN annuaire_structure st ON st.id = s.structure_id
                WHERE NOT s.is_new AND {differs}"""
        )
        assignments = ", ".join(
            [
                *(f"{name} = s.{name}" for name in _STRUCTURE_FIELDS),
                *(f"{name} = coalesce(s.{name}, st.{name})" for name in _STRUCTURE_OPTIONAL_FIELDS),
            ]
        )
        _execute(
            f"""UPDATE annuaire_structure st SET {assignments}, is_active = true, updated_at = %(now)s,
                       last_import_run_id = %(run)s
                FROM {changed} c JOIN {site} s ON s.structure_id = c.id WHERE st.id = c.id""",
            p,
        )
        self.counts.updated = _execute(
            f"""INSERT INTO annuaire_directorychange (run_id, kind, structure_id, fields)
                SELECT %(run)s, CASE WHEN reactivated THEN 'reactivated' ELSE 'updated' END, id, fields
                FROM {changed} ORDER BY id""",
            p,
        )
        # Sites that the file confirms and no FINESS import owned yet (entered by hand, or created by the
        # RPPS import): from now on, FINESS imports keep them up to date.
        _execute(
            f"""UPDATE annuaire_structure st SET last_import_run_id = %(run)s FROM {site} s
                WHERE st.id = s.structure_id AND NOT s.is_new
                  AND (st.last_import_run_id IS NULL OR NOT EXISTS (
                      SELECT 1 FROM annuaire_importrun r
                      WHERE r.id = st.last_import_run_id AND r.kind = 'finess'))""",
            p,
        )
        in_file = _scalar(f"SELECT count(*) FROM {site}")
        self.counts.unchanged = in_file - self.counts.created - self.counts.updated

        self.step(progress, "désactivations")
        _execute(
            f"""CREATE TEMP TABLE {gone} ON COMMIT DROP AS
                SELECT st.id FROM annuaire_structure st
                JOIN annuaire_importrun r ON r.id = st.last_import_run_id AND r.kind = 'finess'
                WHERE st.is_active AND st.finess_et IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM {site} s WHERE s.finess_et = st.finess_et)
                  AND NOT EXISTS (SELECT 1 FROM {rejected} x WHERE x.key = st.finess_et)"""
        )
        self.check_deactivations(_scalar(f"SELECT count(*) FROM {gone}"), known, "établissements")
        _execute(
            f"""UPDATE annuaire_structure st SET is_active = false, updated_at = %(now)s,
                       last_import_run_id = %(run)s
                FROM {gone} g WHERE st.id = g.id""",
            p,
        )
        self.counts.deactivated = _execute(
            f"""INSERT INTO annuaire_directorychange (run_id, kind, structure_id, fields)
                SELECT %(run)s, 'deactivated', id, %(deactivated)s::jsonb FROM {gone} ORDER BY id""",
            p,
        )
