"""REST API of the messagerie app (DRF serializers and views)."""
