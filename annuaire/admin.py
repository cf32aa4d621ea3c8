"""Django admin of the annuaire app."""
