"""REST API of the dmp app (DRF serializers and views)."""
