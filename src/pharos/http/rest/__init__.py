"""Orthanc's REST API, one module per area; each builds an APIRouter bound to the services."""
