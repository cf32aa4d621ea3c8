"""Reads of the ror app: <entity>_list / _get / _search."""
