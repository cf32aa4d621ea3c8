"""REST API of the ror app (DRF serializers and views)."""
