"""Tables of the dmp app."""
