"""Reads of the dmp app: <entity>_list / _get / _search."""
