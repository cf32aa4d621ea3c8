"""A local double of the national DMP (XDS.b repository + registry) for tests and the demo.

Test tooling only: never imported by the production packages. Start it with
`python -m devtools.dmp_double --port N --ca-bundle VIHF_CA.pem --data-dir DIR [--tls-cert … --tls-key …
--client-ca …]`; see devtools/README.md.
"""
