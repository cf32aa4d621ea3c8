"""Celery tasks of the telemedecine app: thin wrappers that take ids and call a service."""
