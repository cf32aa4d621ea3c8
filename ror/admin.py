"""Django admin of the ror app."""
