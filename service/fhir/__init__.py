"""FHIR R4 (the R4B models of ``fhir.resources``, FHIR 4.3.0) over teleread's own records.

Pure translations: rows (service/storage/fhir.py) become resources validated by ``fhir.resources``,
and a ServiceRequest a hospital system posts becomes a consultation request. The HTTP edge
(service/http/routes/fhir_routes.py) only parses the query, calls these and answers JSON.
docs/integration.md#fhir-r4 describes the interface.
"""
