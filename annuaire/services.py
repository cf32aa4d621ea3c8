"""Writes and business rules of the annuaire app: <entity>_<verb>(*, ...) -> result, atomic, audited."""
