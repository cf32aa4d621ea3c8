"""Serializers of the ROR API (field names in French, as the payloads establishments' software send)."""

from rest_framework import serializers

MAX_UPDATES_PER_REQUEST = 100


class CapaciteSerializer(serializers.Serializer):
    nature = serializers.CharField(help_text="nature de capacité (J187) : 01 lits, 02 places")
    statut = serializers.CharField(help_text="statut de capacité (TRE_R330) : 01 installé, 02 disponible …")
    nombre = serializers.IntegerField(help_text="nombre de lits ou de places (≥ 0)")
    genre = serializers.CharField(required=False, allow_blank=True, default="", help_text="genre (J190)")
    crise = serializers.BooleanField(required=False, default=False, help_text="capacité de crise")


class MiseAJourSerializer(serializers.Serializer):
    offre = serializers.CharField(help_text="identifiant de l'offre opérationnelle")
    lieu = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="identifiant du lieu (facultatif si un seul lieu)",
    )
    capacites = CapaciteSerializer(many=True, allow_empty=False)


class LotSerializer(serializers.Serializer):
    mises_a_jour = serializers.ListField(
        child=MiseAJourSerializer(), allow_empty=False, max_length=MAX_UPDATES_PER_REQUEST
    )


class ResultatSerializer(serializers.Serializer):
    offre = serializers.CharField()
    lieu = serializers.CharField()
    mise_a_jour = serializers.IntegerField()
    date = serializers.DateTimeField()
