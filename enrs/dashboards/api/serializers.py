"""Shapes of the dashboards' JSON figures (for the OpenAPI documentation; the data are built by `figures`)."""

from rest_framework import serializers


class DashboardCellSerializer(serializers.Serializer):
    valeur = serializers.FloatField(allow_null=True, help_text="Nombre ; null si masqué ou non calculable.")
    masque = serializers.BooleanField(
        help_text="Vrai : valeur calculée sur moins de 5 actes (secret « < 5 »)."
    )
    texte = serializers.CharField(help_text="Affichage français (« < 5 » pour une cellule masquée).")


class DashboardRowSerializer(serializers.Serializer):
    cle = serializers.CharField(help_text="Période (AAAA-MM-JJ, début du pas) ou clé de la répartition.")
    libelle = serializers.CharField()
    cellules = DashboardCellSerializer(many=True)


class DashboardTargetSerializer(serializers.Serializer):
    indicateur = serializers.CharField()
    annee = serializers.IntegerField()
    departement = serializers.CharField(help_text="Vide : objectif régional.")
    objectif = serializers.FloatField()
    attendu = serializers.FloatField(
        help_text="Objectif, ou pour un cumul sa part pour les jours de la période."
    )
    realise = DashboardCellSerializer()
    ecart = serializers.FloatField(allow_null=True)
    texte = serializers.CharField()


class DashboardFiltersSerializer(serializers.Serializer):
    debut = serializers.DateField()
    fin = serializers.DateField()
    pas = serializers.ChoiceField(choices=["day", "week", "month"])
    departement = serializers.CharField(allow_null=True)
    categorie = serializers.CharField(allow_null=True)
    college = serializers.IntegerField(allow_null=True)
    membre = serializers.IntegerField(allow_null=True)


class DashboardFigureSerializer(serializers.Serializer):
    tableau = serializers.CharField(help_text="Page du tableau de bord.")
    graphique = serializers.CharField()
    titre = serializers.CharField()
    unite = serializers.CharField()
    filtres = DashboardFiltersSerializer()
    colonnes = serializers.ListField(
        child=serializers.CharField(), help_text="En-têtes ; la première : lignes."
    )
    lignes = DashboardRowSerializer(many=True)
    objectifs = DashboardTargetSerializer(many=True)
    notes = serializers.ListField(child=serializers.CharField())


class DashboardChartLinkSerializer(serializers.Serializer):
    graphique = serializers.CharField()
    titre = serializers.CharField()
    url = serializers.CharField()


class DashboardPageSerializer(serializers.Serializer):
    tableau = serializers.CharField()
    titre = serializers.CharField()
    description = serializers.CharField()
    graphiques = DashboardChartLinkSerializer(many=True)


class DashboardErrorSerializer(serializers.Serializer):
    erreur = serializers.CharField()
