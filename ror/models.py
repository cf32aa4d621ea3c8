"""Tables of the ror app."""
