"""Safe XML parsing for untrusted input: no DTD, no entities, no network, bounded tree."""

from __future__ import annotations

from lxml import etree


class UnsafeXmlError(ValueError):
    pass


def parse(data: bytes) -> etree._Element:
    """Parse `data`; refuse any DOCTYPE (hence entity definitions) and malformed XML."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsafeXmlError("Les déclarations DOCTYPE/ENTITY sont refusées.")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError(f"XML mal formé : {exc}") from exc
    if root is None:
        raise UnsafeXmlError("Document XML vide.")
    return root
