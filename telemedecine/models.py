"""Tables of the telemedecine app."""
