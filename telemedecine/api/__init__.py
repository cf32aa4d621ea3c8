"""REST API of the telemedecine app (DRF serializers and views)."""
