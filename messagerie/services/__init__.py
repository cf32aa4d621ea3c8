"""Writes and business rules of the messagerie app, one module per area (see each module)."""
