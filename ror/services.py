"""Writes and business rules of the ror app: <entity>_<verb>(*, ...) -> result, atomic, audited.

Capacity rules (``capacity_update``), per capacity type (J187: lits / places), after the update is applied
to the current counts of the offer at the location:

* every count is an integer ≥ 0; codes must be known (J187, TRE_R330 without the deprecated 07, J190);
* disponibles (02) ≤ installés (01) + supplémentaires (06): supplementary beds, opened beyond the installed
  capacity in a time of strain, may be available;
* fermés (05) ≤ installés (01);
* hence availability needs an installed (or supplementary) count, given before or in the same update;
* one value per (type, status) in an update; the location must give the offer;
* the writer must be allowed: a member of the offer's structure with ``can_update_capacity``, an API token
  scoped to that structure, or GCS staff / an administrator.

A refused update raises ``ValidationError`` (French messages, keyed by ``count_<type>_<status>`` when a
field is at fault) and writes nothing.
"""

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from annuaire.models import Structure
from enrs.accounts.roles import ADMINISTRATION, user_has_role
from enrs.audit.services import audit_record
from enrs.usage.services import usage_emit

from .models import (
    Capacity,
    CapacityUpdate,
    Offer,
    OfferClosure,
    OfferLocation,
    RorApiToken,
    StructureMembership,
    UpdateSource,
)
from .standards import valuesets as vs

TOKEN_PREFIX = "ror_"  # noqa: S105 — a marker of our tokens, not a secret
# last_used_at is written at most once a minute per token: a busy software must not turn every
# update into one more write on the token row.
TOKEN_TOUCH_EVERY_SECONDS = 60


def field_name(capacity_type: str, status: str) -> str:
    """Name of the form field (and error key) of the count of (type, status)."""
    return f"count_{capacity_type}_{status}"


@dataclass(frozen=True, slots=True)
class CapacityValue:
    capacity_type: str
    status: str
    count: int
    gender: str = ""
    crisis: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.capacity_type, self.status)

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "gender": self.gender, "crisis": self.crisis}


# --- Scope -----------------------------------------------------------------------------------------------


def user_is_gcs_staff(user: Any) -> bool:
    return user_has_role(user, ADMINISTRATION)


def user_structure_ids(user: Any) -> set[int]:
    """Structures whose capacities `user` may update (through a membership)."""
    if not getattr(user, "is_authenticated", False):
        return set()
    return set(
        StructureMembership.objects.filter(user=user, can_update_capacity=True).values_list(
            "structure_id", flat=True
        )
    )


def _token_structure_ids(token: RorApiToken) -> set[int]:
    cached = getattr(token, "_structure_ids", None)
    if cached is None:
        cached = set(token.structures.values_list("pk", flat=True))
        token._structure_ids = cached  # type: ignore[attr-defined]
    return cached


def capacity_update_allowed(*, offer: Offer, actor: Any = None, token: RorApiToken | None = None) -> bool:
    """May `actor` (a user) or `token` (an API token) update the capacities of `offer`?"""
    if token is not None:
        return token.revoked_at is None and offer.structure_id in _token_structure_ids(token)
    if actor is None:
        return False
    if user_is_gcs_staff(actor):
        return True
    return offer.structure_id in user_structure_ids(actor)


# --- Capacity updates --------------------------------------------------------------------------------------


def _parse_values(values: Iterable[Mapping[str, Any] | CapacityValue]) -> list[CapacityValue]:
    """Check the shape and codes of each value; raise one ValidationError listing every fault."""
    sets = vs.valuesets()
    errors: dict[str, list[str]] = {}
    parsed: list[CapacityValue] = []
    seen: set[tuple[str, str]] = set()

    def fail(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    for index, raw in enumerate(values):
        if isinstance(raw, CapacityValue):
            raw = {
                "capacity_type": raw.capacity_type,
                "status": raw.status,
                "count": raw.count,
                "gender": raw.gender,
                "crisis": raw.crisis,
            }
        capacity_type = str(raw.get("capacity_type", "") or "")
        status = str(raw.get("status", "") or "")
        key = field_name(capacity_type, status) if capacity_type and status else f"capacites[{index}]"
        if capacity_type not in sets.capacity_types:
            fail(
                key,
                f"Nature de capacité inconnue : « {capacity_type} » (valeurs possibles : "
                + ", ".join(f"{c} {label}" for c, label in sets.capacity_types.items())
                + ").",
            )
            continue
        if status not in sets.capacity_statuses:
            fail(key, f"Statut de capacité inconnu : « {status} » (nomenclature TRE_R330, codes 01 à 09).")
            continue
        if status in sets.deprecated_capacity_statuses:
            fail(
                key, f"Le statut « {status} {sets.capacity_statuses[status]} » ne s'échange plus (TRE_R330)."
            )
            continue
        count = raw.get("count")
        if isinstance(count, str) and count.strip().lstrip("-").isdigit():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int):
            fail(key, "Le nombre doit être un entier.")
            continue
        if count < 0:
            fail(key, "Le nombre ne peut pas être négatif.")
            continue
        gender = str(raw.get("gender", "") or "")
        if gender and gender not in sets.capacity_genders:
            fail(key, f"Genre inconnu : « {gender} » (nomenclature J190).")
            continue
        crisis = raw.get("crisis", False)
        if not isinstance(crisis, bool):
            fail(key, "L'indicateur de crise doit valoir vrai ou faux.")
            continue
        if (capacity_type, status) in seen:
            fail(key, "Ce statut est donné deux fois dans la même mise à jour.")
            continue
        seen.add((capacity_type, status))
        parsed.append(CapacityValue(capacity_type, status, count, gender, crisis))
    if not parsed and not errors:
        raise ValidationError("La mise à jour ne contient aucune capacité.")
    if errors:
        raise ValidationError(errors)
    return parsed


def _check_rules(state: Mapping[tuple[str, str], int]) -> dict[str, list[str]]:
    """The cross-status rules on the counts after the update (per capacity type)."""
    sets = vs.valuesets()
    errors: dict[str, list[str]] = {}
    for capacity_type in sorted({t for t, _ in state}):
        noun = sets.capacity_types.get(capacity_type, capacity_type).lower() + "s"
        installed = state.get((capacity_type, vs.INSTALLED), 0)
        additional = state.get((capacity_type, vs.ADDITIONAL), 0)
        available = state.get((capacity_type, vs.AVAILABLE), 0)
        closed = state.get((capacity_type, vs.CLOSED), 0)
        if available > installed + additional:
            errors.setdefault(field_name(capacity_type, vs.AVAILABLE), []).append(
                f"{available} {noun} disponibles pour {installed} installés"
                + (f" et {additional} supplémentaires" if additional else "")
                + " : les disponibles ne peuvent pas dépasser les installés (plus les supplémentaires)."
            )
        if closed > installed:
            errors.setdefault(field_name(capacity_type, vs.CLOSED), []).append(
                f"{closed} {noun} fermés pour {installed} installés : "
                "les fermés ne peuvent pas dépasser les installés."
            )
    return errors


def capacity_update(
    *,
    offer: Offer,
    location: OfferLocation,
    values: Iterable[Mapping[str, Any] | CapacityValue],
    source: str,
    actor: Any = None,
    token: RorApiToken | None = None,
    request: HttpRequest | None = None,
    at: datetime | None = None,
) -> CapacityUpdate:
    """Apply one availability update of `offer` at `location` and record it in the history.

    Short transaction: it locks the offer row (which serialises updates of that offer, and only them) and
    its capacity rows at that location; searches read without locks and are never blocked."""
    if source not in UpdateSource.values:
        raise ValueError(f"source inconnue : {source!r}")
    if not capacity_update_allowed(offer=offer, actor=actor, token=token):
        raise ValidationError(
            "Vous n'êtes pas autorisé à mettre à jour les disponibilités de cette offre "
            "(elle appartient à une autre structure).",
            code="forbidden",
        )
    parsed = _parse_values(values)
    actor_user = actor if getattr(actor, "is_authenticated", False) else None
    now = at or timezone.now()
    with transaction.atomic():
        # Lock the offer row first (two updates of the same offer queue up here, other offers are free) and
        # check, in the same round trip, that the location gives the offer.
        locked = list(
            Offer.objects.select_for_update(of=("self",))
            .filter(pk=offer.pk, locations=location)
            .values_list("structure_id", flat=True)
        )
        if not locked:
            raise ValidationError("Ce lieu ne propose pas cette offre.", code="location_mismatch")
        if locked[0] != offer.structure_id:  # moved to another structure meanwhile
            raise ValidationError("L'offre a changé de structure : rechargez la page.")
        current = {
            (c.capacity_type, c.status): c
            for c in Capacity.objects.select_for_update().filter(offer=offer, location=location)
        }
        state = {key: c.count for key, c in current.items()}
        state.update({v.key: v.count for v in parsed})
        errors = _check_rules(state)
        if errors:
            raise ValidationError(errors)

        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        rows: list[Capacity] = []
        for value in parsed:
            label = f"{value.capacity_type}-{value.status}"
            row = current.get(value.key)
            before[label] = (
                {"count": row.count, "gender": row.gender, "crisis": row.crisis} if row is not None else None
            )
            after[label] = value.as_json()
            rows.append(
                Capacity(
                    offer=offer,
                    location=location,
                    capacity_type=value.capacity_type,
                    status=value.status,
                    count=value.count,
                    gender=value.gender,
                    crisis=value.crisis,
                    updated_at=now,
                    updated_by=actor_user,
                )
            )
        # One INSERT … ON CONFLICT DO UPDATE for new and existing rows (the rows are locked above).
        Capacity.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["offer", "location", "capacity_type", "status"],
            update_fields=["count", "gender", "crisis", "updated_at", "updated_by"],
        )
        # Never moves back in time (an import may bring data older than a later update elsewhere).
        Offer.objects.filter(pk=offer.pk).filter(
            Q(capacity_updated_at__isnull=True) | Q(capacity_updated_at__lt=now)
        ).update(capacity_updated_at=now)
        if offer.capacity_updated_at is None or offer.capacity_updated_at < now:
            offer.capacity_updated_at = now
        update = CapacityUpdate.objects.create(
            offer=offer,
            location=location,
            created_at=now,
            actor=actor_user,
            token=token,
            source=source,
            before=before,
            after=after,
        )
        usage_emit(
            "ror.capacity_update",
            structure_id=offer.structure_id,
            occurred_at=now,
            dims={"source": source, "values": len(parsed)},
            actor=actor_user,
        )
        # Last step of the transaction: the audit chain's lock is held only until the commit.
        audit_record(
            action="ror.capacity.update",
            request=request,
            actor=actor_user,
            target=update,
            detail={
                "offer": offer.identifier,
                "location": location.identifier,
                "source": source,
                "token": token.key_prefix if token is not None else "",
                "values": len(parsed),
            },
        )
    return update


# --- Offers ------------------------------------------------------------------------------------------------

OFFER_CODE_FIELDS = {
    # field → (value-set attribute, required, label)
    "activity_field_code": ("activity_fields", True, "champ d'activité (J20)"),
    "offer_type_code": ("offer_types", False, "type d'offre (J238)"),
    "care_mode_code": ("care_modes", False, "mode de prise en charge (J19)"),
    "reception_type_code": ("reception_types", False, "temporalité d'accueil (J30)"),
    "operational_activity_code": ("operational_activities", False, "activité opérationnelle (J17)"),
}
OFFER_FIELDS = (
    "name",
    *OFFER_CODE_FIELDS,
    "operational_activity_family_code",
    "age_min",
    "age_max",
    "public_code",
    "specialised_care_codes",
    "is_active",
)


def offer_check_codes(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Value-set checks of an offer's codes (used by the services and the import)."""
    sets = vs.valuesets()
    errors: dict[str, list[str]] = {}
    for name, (table, required, label) in OFFER_CODE_FIELDS.items():
        code = values.get(name) or ""
        if not code:
            if required:
                errors.setdefault(name, []).append(f"Le {label} est obligatoire.")
            continue
        if code not in getattr(sets, table):
            errors.setdefault(name, []).append(f"Code inconnu pour le {label} : « {code} ».")
    for code in values.get("specialised_care_codes") or []:
        if code not in sets.specialised_care:
            errors.setdefault("specialised_care_codes", []).append(
                f"Code inconnu pour la spécialisation de prise en charge (J35) : « {code} »."
            )
    return errors


def _offer_validate(offer: Offer) -> None:
    errors = offer_check_codes({name: getattr(offer, name) for name in OFFER_FIELDS})
    try:
        offer.full_clean()
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    if offer.age_min is not None and offer.age_max is not None and offer.age_min > offer.age_max:
        errors.setdefault("age_max", []).append("L'âge maximum doit être supérieur ou égal à l'âge minimum.")
    if errors:
        raise ValidationError(errors)


def offer_create(*, identifier: str, structure: Structure, actor: Any = None, **values: Any) -> Offer:
    unknown = set(values) - set(OFFER_FIELDS)
    if unknown:
        raise TypeError(f"champs inconnus : {sorted(unknown)}")
    with transaction.atomic():
        offer = Offer(identifier=identifier, structure=structure, **values)
        _offer_validate(offer)
        offer.save()
        audit_record(action="ror.offer.create", actor=actor, target=offer, detail={"identifier": identifier})
    return offer


def offer_update(*, offer: Offer, actor: Any = None, **values: Any) -> Offer:
    unknown = set(values) - set(OFFER_FIELDS) - {"structure"}
    if unknown:
        raise TypeError(f"champs inconnus : {sorted(unknown)}")
    changed = sorted(name for name, value in values.items() if getattr(offer, name) != value)
    if not changed:
        return offer
    with transaction.atomic():
        for name, value in values.items():
            setattr(offer, name, value)
        _offer_validate(offer)
        offer.save()
        audit_record(action="ror.offer.update", actor=actor, target=offer, detail={"fields": changed})
    return offer


def offer_closure_add(
    *, offer: Offer, start: datetime, end: datetime | None, reason: str, actor: Any = None
) -> OfferClosure:
    with transaction.atomic():
        closure = OfferClosure(offer=offer, start=start, end=end, reason=reason)
        if end is not None and end <= start:
            raise ValidationError({"end": "La réouverture doit suivre le début de la fermeture."})
        closure.full_clean()
        closure.save()
        audit_record(action="ror.offer.close", actor=actor, target=offer, detail={"closure": closure.pk})
    return closure


# --- Memberships ----------------------------------------------------------------------------------


def membership_set(
    *,
    user: Any,
    structure: Structure,
    can_update_capacity: bool = True,
    receives_notices: bool = True,
    actor: Any,
) -> StructureMembership:
    """Attach `user` to `structure` for the ROR (or change the attachment)."""
    with transaction.atomic():
        membership, _ = StructureMembership.objects.update_or_create(
            user=user,
            structure=structure,
            defaults={"can_update_capacity": can_update_capacity, "receives_notices": receives_notices},
        )
        audit_record(
            action="ror.membership.set",
            actor=actor,
            target=membership,
            detail={"user": user.pk, "structure": structure.pk, "can_update_capacity": can_update_capacity},
        )
    return membership


# --- API tokens ---------------------------------------------------------------------------------------------


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_create(*, name: str, structures: Sequence[Structure], actor: Any) -> tuple[RorApiToken, str]:
    """Create an API token for `structures`; return it with its secret, which is shown once and never
    stored (only its SHA-256 is). GCS staff may scope a token to any structure, members to their own."""
    if not structures:
        raise ValidationError({"structures": "Un jeton doit être rattaché à au moins une structure."})
    if not name.strip():
        raise ValidationError({"name": "Donnez un libellé au jeton (nom du logiciel, par exemple)."})
    if not user_is_gcs_staff(actor):
        outside = {s.pk for s in structures} - user_structure_ids(actor)
        if outside:
            raise ValidationError(
                "Vous ne pouvez créer un jeton que pour vos propres structures.", code="forbidden"
            )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = RorApiToken.objects.create(
            name=name.strip(),
            key_prefix=secret[: len(TOKEN_PREFIX) + 4],
            key_hash=token_hash(secret),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        token.structures.set(structures)
        audit_record(
            action="ror.token.create",
            actor=actor,
            target=token,
            detail={"structures": sorted(s.pk for s in structures), "prefix": token.key_prefix},
        )
    return token, secret


def token_revoke(*, token: RorApiToken, actor: Any) -> RorApiToken:
    if token.revoked_at is not None:
        return token
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            action="ror.token.revoke", actor=actor, target=token, detail={"prefix": token.key_prefix}
        )
    return token


def token_authenticate(secret: str) -> RorApiToken | None:
    """The active token whose secret is `secret`, or None. Marks it used (at most once a minute)."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    token = RorApiToken.objects.filter(key_hash=token_hash(secret), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > TOKEN_TOUCH_EVERY_SECONDS:
        RorApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def stale_after_hours() -> float:
    return float(getattr(settings, "ROR_STALE_AFTER_HOURS", 24))


# --- Batches (the API) --------------------------------------------------------------------------------------


@dataclass
class BatchItem:
    """One update of a batch, as the API receives it: offer and location by their identifiers."""

    offer: str
    location: str  # may be empty when the offer has a single location
    values: list[Mapping[str, Any]]


@dataclass
class BatchOutcome:
    applied: list[dict[str, Any]]  # per applied item: index, offer, location identifiers, update
    refused: list[dict[str, Any]]  # per refused item: index, offer identifier, messages
    only_scope: bool  # every refusal is about the caller's scope (another structure's offer)


def _messages(exc: ValidationError) -> dict[str, list[str]] | list[str]:
    if hasattr(exc, "error_dict"):
        return {key: list(messages) for key, messages in exc.message_dict.items()}
    return list(exc.messages)


def _batch_location(offer: Offer, identifier: str) -> OfferLocation | None:
    locations = offer.locations.all()
    if identifier:
        return locations.filter(identifier=identifier).first()
    found = list(locations[:2])
    return found[0] if len(found) == 1 else None


def capacity_update_batch(
    *,
    items: Sequence[BatchItem],
    actor: Any = None,
    token: RorApiToken | None = None,
    source: str = UpdateSource.API,
    request: HttpRequest | None = None,
) -> BatchOutcome:
    """Apply several updates all or nothing: when one is refused, none is kept and every refusal is
    reported with its index. Offers are locked in id order, so that two batches touching the same offers
    cannot deadlock."""
    offers = {o.identifier: o for o in Offer.objects.filter(identifier__in={item.offer for item in items})}
    applied: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    forbidden = 0
    order = sorted(range(len(items)), key=lambda i: getattr(offers.get(items[i].offer), "pk", 0))
    with transaction.atomic():
        for index in order:
            item = items[index]
            offer = offers.get(item.offer)
            if offer is None:
                refused.append({"index": index, "offre": item.offer, "messages": ["Offre inconnue."]})
                continue
            location = _batch_location(offer, item.location)
            if location is None:
                message = (
                    "Lieu inconnu pour cette offre."
                    if item.location
                    else "Cette offre a plusieurs lieux : précisez « lieu »."
                )
                refused.append({"index": index, "offre": offer.identifier, "messages": [message]})
                continue
            try:
                with transaction.atomic():
                    update = capacity_update(
                        offer=offer,
                        location=location,
                        values=item.values,
                        actor=actor,
                        token=token,
                        source=source,
                        request=request,
                    )
            except ValidationError as exc:
                forbidden += getattr(exc, "code", None) == "forbidden"
                refused.append({"index": index, "offre": offer.identifier, "messages": _messages(exc)})
                continue
            applied.append(
                {"index": index, "offre": offer.identifier, "lieu": location.identifier, "update": update}
            )
        if refused:
            transaction.set_rollback(True)
    applied.sort(key=lambda r: r["index"])
    refused.sort(key=lambda r: r["index"])
    return BatchOutcome(
        applied=[] if refused else applied, refused=refused, only_scope=forbidden == len(refused)
    )
