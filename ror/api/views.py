"""ROR API: availability updates from establishments' software (token) or signed-in staff (session)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.accounts.roles import ROR_ACCESS, HasRole
from ror.models import RorApiToken
from ror.services import BatchItem, capacity_update_batch

from .authentication import RorTokenAuthentication
from .serializers import LotSerializer, MiseAJourSerializer, ResultatSerializer


class TokenOrRole(HasRole.for_rule(ROR_ACCESS)):  # type: ignore[misc]
    """A valid ROR API token (its scope is checked per offer by the service), or a signed-in user holding
    a role of the ROR rule."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if isinstance(request.auth, RorApiToken):
            return True
        return super().has_permission(request, view)


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

        batch = [
            BatchItem(
                offer=item["offre"],
                location=item["lieu"],
                values=[
                    {
                        "capacity_type": c["nature"],
                        "status": c["statut"],
                        "count": c["nombre"],
                        "gender": c["genre"],
                        "crisis": c["crise"],
                    }
                    for c in item["capacites"]
                ],
            )
            for item in items
        ]
        outcome = capacity_update_batch(items=batch, actor=actor, token=token, request=request._request)
        if outcome.refused:
            # 403 when every refusal is about scope (another structure's offer), else 400.
            return Response(
                {"erreurs": outcome.refused, "appliquees": 0},
                status=status.HTTP_403_FORBIDDEN if outcome.only_scope else status.HTTP_400_BAD_REQUEST,
            )
        results = [
            {
                "offre": r["offre"],
                "lieu": r["lieu"],
                "mise_a_jour": r["update"].pk,
                "date": r["update"].created_at,
            }
            for r in outcome.applied
        ]
        return Response(
            {"resultats": ResultatSerializer(results, many=True).data, "appliquees": len(results)}
        )
