"""Development and test tooling for ENRS. Never imported by the production packages (`enrs/`, apps)."""
