"""Celery tasks of the ror app: thin wrappers that take ids and call a service."""
