"""ROR API: availability updates from establishments' software (token) or signed-in staff (session)."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.accounts.roles import ROR_ACCESS, HasRole
from ror.models import Offer, OfferLocation, RorApiToken, UpdateSource
from ror.services import capacity_update

from .authentication import RorTokenAuthentication
from .serializers import LotSerializer, MiseAJourSerializer, ResultatSerializer


class TokenOrRole(HasRole.for_rule(ROR_ACCESS)):  # type: ignore[misc]
    """A valid ROR API token (its scope is checked per offer by the service), or a signed-in user holding
    a role of the ROR rule."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if isinstance(request.auth, RorApiToken):
            return True
        return super().has_permission(request, view)


def _messages(exc: ValidationError) -> dict[str, list[str]] | list[str]:
    if hasattr(exc, "error_dict"):
        return {key: list(messages) for key, messages in exc.message_dict.items()}
    return list(exc.messages)


class CapacityUpdateView(APIView):
    """``POST /api/ror/capacites/``: one update (an object) or several (``{"mises_a_jour": [...]}``).

    All or nothing: when one update is refused, none is applied and the answer (400) lists, for each
    refused update, its index and the reasons."""

    authentication_classes = [RorTokenAuthentication, SessionAuthentication]
    permission_classes = [TokenOrRole]

    @extend_schema(request=LotSerializer, responses={200: ResultatSerializer(many=True)})
    def post(self, request: Request) -> Response:
        data = request.data
        single = isinstance(data, dict) and "mises_a_jour" not in data
        serializer = MiseAJourSerializer(data=data) if single else LotSerializer(data=data)
        if not serializer.is_valid():
            return Response({"erreurs": serializer.errors}, status=status.HTTP_400_BAD_REQUEST)
        items = [serializer.validated_data] if single else serializer.validated_data["mises_a_jour"]
        token = request.auth if isinstance(request.auth, RorApiToken) else None
        actor = None if token is not None else request.user

        identifiers = {item["offre"] for item in items}
        offers = {o.identifier: o for o in Offer.objects.filter(identifier__in=identifiers)}
        errors: list[dict[str, Any]] = []
        forbidden: set[int] = set()  # indexes refused because the offer is out of the caller's scope
        results: list[dict[str, Any]] = []
        # Lock order by offer id, so that two batches touching the same offers cannot deadlock.
        order = sorted(range(len(items)), key=lambda i: getattr(offers.get(items[i]["offre"]), "pk", 0))
        with transaction.atomic():
            for index in order:
                item = items[index]
                offer = offers.get(item["offre"])
                if offer is None:
                    errors.append({"index": index, "offre": item["offre"], "messages": ["Offre inconnue."]})
                    continue
                location = self._location(offer, item["lieu"])
                if location is None:
                    message = (
                        "Lieu inconnu pour cette offre."
                        if item["lieu"]
                        else "Cette offre a plusieurs lieux : précisez « lieu »."
                    )
                    errors.append({"index": index, "offre": offer.identifier, "messages": [message]})
                    continue
                values = [
                    {
                        "capacity_type": c["nature"],
                        "status": c["statut"],
                        "count": c["nombre"],
                        "gender": c["genre"],
                        "crisis": c["crise"],
                    }
                    for c in item["capacites"]
                ]
                try:
                    with transaction.atomic():
                        update = capacity_update(
                            offer=offer,
                            location=location,
                            values=values,
                            actor=actor,
                            token=token,
                            source=UpdateSource.API,
                            request=request._request,
                        )
                except ValidationError as exc:
                    refused = {"index": index, "offre": offer.identifier, "messages": _messages(exc)}
                    if getattr(exc, "code", None) == "forbidden":
                        forbidden.add(index)
                    errors.append(refused)
                    continue
                results.append(
                    {
                        "index": index,
                        "offre": offer.identifier,
                        "lieu": location.identifier,
                        "mise_a_jour": update.pk,
                        "date": update.created_at,
                    }
                )
            if errors:
                transaction.set_rollback(True)
        if errors:
            # 403 when every refusal is about scope (another structure's offer), else 400.
            only_scope = len(forbidden) == len(errors)
            return Response(
                {"erreurs": sorted(errors, key=lambda e: e["index"]), "appliquees": 0},
                status=status.HTTP_403_FORBIDDEN if only_scope else status.HTTP_400_BAD_REQUEST,
            )
        results.sort(key=lambda r: r["index"])
        for r in results:
            r.pop("index")
        return Response(
            {"resultats": ResultatSerializer(results, many=True).data, "appliquees": len(results)}
        )

    @staticmethod
    def _location(offer: Offer, identifier: str) -> OfferLocation | None:
        locations = offer.locations.all()
        if identifier:
            return locations.filter(identifier=identifier).first()
        found = list(locations[:2])
        return found[0] if len(found) == 1 else None
