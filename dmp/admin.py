"""Django admin of the dmp app."""
