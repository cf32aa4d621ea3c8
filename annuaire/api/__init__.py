"""REST API of the annuaire app (DRF serializers and views)."""
