"""Writes and business rules of the ror app: <entity>_<verb>(*, ...) -> result, atomic, audited."""
