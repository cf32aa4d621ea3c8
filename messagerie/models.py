"""Tables of the messagerie app."""
