"""Celery tasks of the messagerie app: thin wrappers that take ids and call a service."""
