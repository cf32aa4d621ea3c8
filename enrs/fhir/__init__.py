"""The portal's FHIR R4 endpoint (``/fhir/``), shared by the apps that expose FHIR resources.

The generic HTTP layer lives here; the resources come from the apps, which register them in
``enrs.fhir.registry.registry`` from their ``AppConfig.ready()`` (``annuaire`` registers Practitioner,
PractitionerRole and Organization; ``ror`` can add HealthcareService and Location, and reverse
includes on ``Organization``, without ``annuaire`` knowing about it).

Modules:

* ``outcome``, ``bundle``, ``params``, ``query``, ``capability``: pure code (no Django import) — the
  OperationOutcome, the searchset Bundle, the parsing of search parameters and the
  CapabilityStatement built from the registry;
* ``registry``: what a resource type provides (read, search, search parameters, includes);
* ``orm``: Django ORM helpers the apps use to implement search (string, token, date, paging);
* ``views`` / ``urls``: the HTTP side (content negotiation, access, errors as OperationOutcome).

``enrs.fhir`` is a plain package, not a Django app: it has no model, template nor migration.
"""
