"""The ROR on ``/fhir/``: HealthcareService (offres opérationnelles) and Location (lieux, with capacities).

``mapping`` and ``records`` are pure; ``resources`` reads the database and registers the types in
``enrs.fhir.registry`` from ``RorConfig.ready()``.
"""
