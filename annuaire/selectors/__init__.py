"""Reads of the annuaire, one module per area:

- `annuaire.selectors.search`: the directory search (professionals, structures) and detail reads;
- `annuaire.selectors.members`: GCS members lists and exports.
"""
