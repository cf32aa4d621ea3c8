"""Reads of the telemedecine app: <entity>_list / _get / _search."""
