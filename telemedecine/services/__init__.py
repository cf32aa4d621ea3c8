"""Writes and business rules of the telemedecine app, one module per area (acts, pools, reports, studies, uploads, transfers)."""
