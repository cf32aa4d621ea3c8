"""ENRS — Espace Numérique Régional de Santé."""

from .celery import app as celery_app

__all__ = ("celery_app",)
