"""Import of a ROR offer file (CSV, format in ``ror/IMPORT_FORMAT.md``): ``import_ror_offers``.

Two passes. ``read_offer_file`` checks the file as a whole (encoding, separator, columns) and raises
``ImportFormatError`` before anything is written. ``import_offers`` then checks each line, groups the lines
by offer and writes each offer in its own short transaction through the services (offers, locations,
capacities with history and audit). A refused line goes to the report with its line number and reason;
the other offers are loaded. Idempotent: offers and locations are upserted on their identifiers, and
capacities dated (``date_maj``) no later than the offer's last update are skipped.
"""

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annuaire.models import Commune, Structure
from enrs.audit.services import audit_record

from .models import Capacity, Offer, OfferLocation, UpdateSource
from .services import OFFER_FIELDS, capacity_update, offer_check_codes, offer_create, offer_update

DELIMITER = ";"
COLUMNS = (
    "identifiant_offre",
    "finess_et",
    "nom_offre",
    "champ_activite",
    "type_offre",
    "mode_prise_en_charge",
    "temporalite_accueil",
    "activite_operationnelle",
    "age_min",
    "age_max",
    "specialisations",
    "identifiant_lieu",
    "nom_lieu",
    "adresse",
    "code_postal",
    "code_commune",
    "latitude",
    "longitude",
    "telephone",
    "courriel",
    "nature_capacite",
    "statut_capacite",
    "nombre",
    "date_maj",
)
REQUIRED_COLUMNS = (
    "identifiant_offre",
    "finess_et",
    "nom_offre",
    "champ_activite",
    "identifiant_lieu",
    "nom_lieu",
)
CAPACITY_COLUMNS = ("nature_capacite", "statut_capacite", "nombre", "date_maj")
MAX_LINES = 500_000


class ImportFormatError(Exception):
    """The file cannot be read as an offer file: nothing is imported."""


@dataclass
class Rejection:
    line: int
    offer: str
    reason: str


@dataclass
class ImportReport:
    lines: int = 0
    offers_created: int = 0
    offers_updated: int = 0
    offers_unchanged: int = 0
    locations_created: int = 0
    capacity_updates: int = 0
    capacity_skipped: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected_lines(self) -> int:
        return len({r.line for r in self.rejections})


Line = tuple[int, dict[str, str]]


def read_offer_file(source: Path | bytes) -> list[Line]:
    """The lines of the file as (line number, {column: value}); raises ImportFormatError on a format fault."""
    raw = source.read_bytes() if isinstance(source, Path) else source
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            f"Le fichier n'est pas en UTF-8 (octet invalide en position {exc.start}) : "
            "enregistrez-le en « CSV UTF-8 »."
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITER)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise ImportFormatError("Le fichier est vide.") from exc
    header = [h.strip().lower() for h in header]
    if len(header) == 1 and ("," in header[0] or "\t" in header[0]):
        raise ImportFormatError("Le séparateur doit être le point-virgule (;).")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFormatError("Colonnes obligatoires absentes : " + ", ".join(missing) + ".")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise ImportFormatError(
            "Colonnes inconnues : " + ", ".join(unknown) + " (voir ror/IMPORT_FORMAT.md)."
        )
    if len(set(header)) != len(header):
        raise ImportFormatError("Une colonne est présente deux fois dans l'en-tête.")
    lines: list[Line] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ImportFormatError(
                f"Ligne {reader.line_num} : {len(row)} champs pour {len(header)} colonnes "
                "(un point-virgule dans une valeur doit être entre guillemets)."
            )
        lines.append((reader.line_num, {c: v.strip() for c, v in zip(header, row, strict=True)}))
        if len(lines) > MAX_LINES:
            raise ImportFormatError(f"Plus de {MAX_LINES} lignes : découpez le fichier.")
    return lines


def _int(value: str, label: str, errors: list[str]) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        errors.append(f"{label} : « {value} » n'est pas un nombre entier.")
        return None


def _float(value: str, label: str, low: float, high: float, errors: list[str]) -> float | None:
    if not value:
        return None
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        errors.append(f"{label} : « {value} » n'est pas un nombre.")
        return None
    if not low <= number <= high:
        errors.append(f"{label} : {number} hors de l'intervalle [{low}, {high}].")
        return None
    return number


def _offer_values(row: dict[str, str], errors: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": row.get("nom_offre", ""),
        "activity_field_code": row.get("champ_activite", ""),
        "offer_type_code": row.get("type_offre", ""),
        "care_mode_code": row.get("mode_prise_en_charge", ""),
        "reception_type_code": row.get("temporalite_accueil", ""),
        "operational_activity_code": row.get("activite_operationnelle", ""),
        "age_min": _int(row.get("age_min", ""), "age_min", errors),
        "age_max": _int(row.get("age_max", ""), "age_max", errors),
        "specialised_care_codes": [c.strip() for c in row.get("specialisations", "").split("|") if c.strip()],
    }
    for messages in offer_check_codes(values).values():
        errors.extend(messages)
    if (
        values["age_min"] is not None
        and values["age_max"] is not None
        and values["age_min"] > values["age_max"]
    ):
        errors.append("age_min est supérieur à age_max.")
    if not values["name"]:
        errors.append("nom_offre est vide.")
    return values


def _location_values(row: dict[str, str], errors: list[str]) -> dict[str, Any]:
    return {
        "name": row.get("nom_lieu", ""),
        "address_line": row.get("adresse", ""),
        "postal_code": row.get("code_postal", ""),
        "latitude": _float(row.get("latitude", ""), "latitude", -90, 90, errors),
        "longitude": _float(row.get("longitude", ""), "longitude", -180, 180, errors),
        "phone": row.get("telephone", ""),
        "email": row.get("courriel", ""),
    }


@dataclass
class _OfferGroup:
    identifier: str
    structure: Structure
    values: dict[str, Any]
    lines: list[int] = field(default_factory=list)
    # location identifier → (values, commune, lines)
    locations: dict[str, tuple[dict[str, Any], Commune | None]] = field(default_factory=dict)
    # location identifier → [(line, capacity value, date)]
    capacities: dict[str, list[tuple[int, dict[str, Any], datetime | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )


def _group(lines: list[Line], report: ImportReport) -> list[_OfferGroup]:
    finess = {r["finess_et"] for _, r in lines if r.get("finess_et")}
    structures = {s.finess_et: s for s in Structure.objects.filter(finess_et__in=finess)}
    insee = {r["code_commune"] for _, r in lines if r.get("code_commune")}
    communes = {c.insee_code: c for c in Commune.objects.filter(insee_code__in=insee)}
    groups: dict[str, _OfferGroup] = {}
    for number, row in lines:
        identifier = row.get("identifiant_offre", "")
        errors: list[str] = []
        for column in REQUIRED_COLUMNS:
            if not row.get(column):
                errors.append(f"{column} est vide.")
        structure = structures.get(row.get("finess_et", ""))
        if row.get("finess_et") and structure is None:
            errors.append(f"FINESS {row['finess_et']} inconnu dans l'annuaire.")
        values = _offer_values(row, errors)
        location_values = _location_values(row, errors)
        commune = None
        if row.get("code_commune"):
            commune = communes.get(row["code_commune"])
            if commune is None:
                errors.append(f"Commune INSEE {row['code_commune']} inconnue.")
        capacity: tuple[dict[str, Any], datetime | None] | None = None
        if any(row.get(c) for c in CAPACITY_COLUMNS):
            count = _int(row.get("nombre", ""), "nombre", errors)
            date = parse_datetime(row.get("date_maj", "")) if row.get("date_maj") else None
            if row.get("date_maj") and date is None:
                errors.append(f"date_maj : « {row['date_maj']} » n'est pas une date-heure ISO 8601.")
            if date is not None and timezone.is_naive(date):
                date = timezone.make_aware(date)
            if not row.get("nature_capacite") or not row.get("statut_capacite") or count is None:
                errors.append(
                    "Capacité incomplète : nature_capacite, statut_capacite et nombre vont ensemble."
                )
            elif date is not None or not row.get("date_maj"):
                capacity = (
                    {
                        "capacity_type": row["nature_capacite"],
                        "status": row["statut_capacite"],
                        "count": count,
                    },
                    date,
                )
        group = groups.get(identifier)
        if not errors and group is not None:
            if structure is not group.structure:
                errors.append("Cette offre est rattachée à un autre FINESS sur une ligne précédente.")
            elif values != group.values:
                errors.append(
                    "Les champs de l'offre diffèrent de ceux d'une ligne précédente de la même offre."
                )
        if errors:
            report.rejections.extend(Rejection(number, identifier, e) for e in errors)
            continue
        assert structure is not None
        if group is None:
            group = groups[identifier] = _OfferGroup(identifier, structure, values)
        group.lines.append(number)
        group.locations.setdefault(row["identifiant_lieu"], (location_values, commune))
        if capacity is not None:
            group.capacities[row["identifiant_lieu"]].append((number, capacity[0], capacity[1]))
    return list(groups.values())


def _save_offer(group: _OfferGroup, *, actor: Any, report: ImportReport) -> None:
    offer = Offer.objects.filter(identifier=group.identifier).first()
    if offer is not None and offer.structure_id != group.structure.pk:
        raise ValidationError("L'offre existe déjà, rattachée à une autre structure.")
    if offer is None:
        offer = offer_create(
            identifier=group.identifier, structure=group.structure, actor=actor, **group.values
        )
        report.offers_created += 1
    else:
        before = {name: getattr(offer, name) for name in OFFER_FIELDS}
        offer_update(offer=offer, actor=actor, **group.values)
        changed = any(before[name] != getattr(offer, name) for name in group.values)
        if changed:
            report.offers_updated += 1
        else:
            report.offers_unchanged += 1
    for identifier, (values, commune) in group.locations.items():
        location = OfferLocation.objects.filter(identifier=identifier).first()
        if location is not None and location.structure_id != group.structure.pk:
            raise ValidationError(f"Le lieu {identifier} appartient à une autre structure.")
        if location is None:
            location = OfferLocation(
                identifier=identifier, structure=group.structure, commune=commune, **values
            )
            location.full_clean()
            location.save()
            report.locations_created += 1
        else:
            changed_fields = [name for name, value in values.items() if getattr(location, name) != value]
            if location.commune_id != (commune.pk if commune else None):
                location.commune = commune
                changed_fields.append("commune")
            if changed_fields:
                for name in changed_fields:
                    if name != "commune":
                        setattr(location, name, values[name])
                location.full_clean()
                location.save()
        location.offers.add(offer)
        entries = group.capacities.get(identifier, [])
        if not entries:
            continue
        dates = [date for _, _, date in entries if date is not None]
        at = max(dates) if dates else None
        if at is not None and offer.capacity_updated_at is not None and at <= offer.capacity_updated_at:
            report.capacity_skipped += 1  # already imported, or the portal has newer data
            continue
        if at is None:
            current = {
                (c.capacity_type, c.status): c.count
                for c in Capacity.objects.filter(offer=offer, location=location)
            }
            if all(current.get((v["capacity_type"], v["status"])) == v["count"] for _, v, _ in entries):
                report.capacity_skipped += 1  # undated and identical to what is recorded
                continue
        capacity_update(
            offer=offer,
            location=location,
            values=[value for _, value, _ in entries],
            actor=actor,
            source=UpdateSource.IMPORT,
            at=at,
        )
        report.capacity_updates += 1


def import_offers(
    lines: list[Line],
    *,
    actor: Any,
    filename: str = "",
    progress: Callable[[int, int], None] | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Load the checked lines of an offer file; one transaction per offer (all of it or none of it)."""
    report = ImportReport(lines=len(lines))
    groups = _group(lines, report)
    counters = (
        "offers_created",
        "offers_updated",
        "offers_unchanged",
        "locations_created",
        "capacity_updates",
        "capacity_skipped",
    )
    for group in groups:
        partial = ImportReport()  # merged into the report only when the offer's transaction succeeds
        try:
            with transaction.atomic():
                _save_offer(group, actor=actor, report=partial)
                if dry_run:
                    transaction.set_rollback(True)
            for name in counters:
                setattr(report, name, getattr(report, name) + getattr(partial, name))
        except ValidationError as exc:
            messages = (
                [f"{k} : {m}" if k != "__all__" else m for k, ms in exc.message_dict.items() for m in ms]
                if hasattr(exc, "error_dict")
                else list(exc.messages)
            )
            report.rejections.extend(Rejection(n, group.identifier, m) for n in group.lines for m in messages)
        if progress is not None:
            progress(1, len(groups))
    if not dry_run:
        audit_record(
            action="ror.import",
            actor=actor,
            detail={
                "file": Path(filename).name[:200],
                "lines": report.lines,
                "created": report.offers_created,
                "updated": report.offers_updated,
                "capacity_updates": report.capacity_updates,
                "rejected_lines": report.rejected_lines,
            },
        )
    report.rejections.sort(key=lambda r: r.line)
    return report
