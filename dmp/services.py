"""Writes and business rules of the dmp app: <entity>_<verb>(*, ...) -> result, atomic, audited."""
