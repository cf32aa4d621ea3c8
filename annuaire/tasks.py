"""Celery tasks of the annuaire app: thin wrappers that take ids and call a service."""
