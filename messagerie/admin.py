"""Django admin of the messagerie app."""
