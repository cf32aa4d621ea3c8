"""Writes and business rules of the telemedecine app: <entity>_<verb>(*, ...) -> result, atomic, audited."""
