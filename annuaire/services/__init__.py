"""Writes and business rules of the annuaire, one module per area:

- `annuaire.services.imports`: national open-data imports (RPPS, FINESS);
- `annuaire.services.members`: GCS members (adhérents) lifecycle and onboarding.

Every write is `<entity>_<verb>(*, keyword_only) -> result`, atomic and audited.
"""
