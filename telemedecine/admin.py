"""Django admin of the telemedecine app."""
