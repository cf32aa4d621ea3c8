"""Reads of the messagerie app: <entity>_list / _get / _search."""
