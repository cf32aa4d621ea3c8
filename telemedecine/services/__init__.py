"""Writes and business rules of the telemedecine app, one module per area: acts, pools, rooms, reports,
studies, uploads, transfers."""
