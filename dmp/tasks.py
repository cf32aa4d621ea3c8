"""Celery tasks of the dmp app: thin wrappers that take ids and call a service."""
