"""The API's front door: /api/ lists what is there, and where the schema and its documentation are."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

# name of the route -> what it is; routes with an id are listed with a sample path.
LISTED = {
    "api-docs": "API documentation (Swagger UI)",
    "api-schema": "OpenAPI schema (YAML; ?format=json for JSON)",
    "api-study-list": "studies",
    "api-run-list": "generation runs",
    "api-sweep-list": "sweeps",
    "api-sweep-presets": "sweep presets",
    "api-fine-tune-list": "fine-tunes",
}
WITH_ID = {
    "api-study-detail": "one study",
    "api-comparison-list": "a study's comparisons",
    "api-study-results": "a study's results",
    "api-snapshot-list": "a study's snapshots",
    "api-run-detail": "one run with its progress",
    "api-fine-tune-detail": "one fine-tune with its progress",
}


class ApiRoot(APIView):
    """Every endpoint of the API, by name, with its URL (any staff account may read the list)."""

    required_permissions = {"GET": []}

    @extend_schema(exclude=True)
    def get(self, request):
        endpoints = [
            {"name": name, "description": text, "url": reverse(name, request=request)} for name, text in LISTED.items()
        ]
        endpoints += [
            {
                "name": name,
                "description": text,
                "url": reverse(name, args=[1], request=request).replace("/1/", "/{id}/"),
            }
            for name, text in WITH_ID.items()
        ]
        return Response({"endpoints": endpoints})
