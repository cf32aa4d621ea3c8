"""Tables of the annuaire app."""
