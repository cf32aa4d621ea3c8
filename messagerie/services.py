"""Writes and business rules of the messagerie app: <entity>_<verb>(*, ...) -> result, atomic, audited."""
