"""Reads of the annuaire app: <entity>_list / _get / _search."""
