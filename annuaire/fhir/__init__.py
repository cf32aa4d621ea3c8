"""The directory as FHIR R4 resources (ANS « Annuaire Santé » profiles).

* ``records``: plain values filled from the models;
* ``mapping``: records → FHIR JSON (pure code, vector-tested);
* ``resources``: ORM queries, search semantics and the registration on ``/fhir/`` (``enrs.fhir``).
"""
