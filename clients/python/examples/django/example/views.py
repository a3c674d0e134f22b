"""Views limited the django-smart-ratelimit way; every decision comes from ratelimitd."""

from django.http import HttpRequest, JsonResponse
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from ratelimitd.django import rate_limit


@rate_limit(key="ip", rate="5/m")
def hello(request: HttpRequest) -> JsonResponse:
    """Five a minute per client address (and the middleware's 100/m, in the same call)."""
    return JsonResponse({"message": "Hello World!"})


@rate_limit(key="ip", rate="3/m", method="POST", algorithm="sliding_log", group="views.login")
def login(request: HttpRequest) -> JsonResponse:
    """Three attempts a minute in any sliding minute; GETs are not limited."""
    return JsonResponse({"method": request.method})


@rate_limit(key="ip", rate="10/m", group="anon")
@rate_limit(key="user", rate="100/m", group="auth")
async def feed(request: HttpRequest) -> JsonResponse:
    """An async view with stacked groups: one CheckLimit for both."""
    return JsonResponse({"items": []})


@rate_limit(key="ip", rate="10/m", block=False)
def report(request: HttpRequest) -> JsonResponse:
    """Never refused: says whether it would have been."""
    return JsonResponse({"limited": request.limited})  # type: ignore[attr-defined]


def health(request: HttpRequest) -> JsonResponse:
    """In SKIP_PATHS: never asks ratelimitd."""
    return JsonResponse({"ok": True})


class ItemViewSet(viewsets.ViewSet):
    """DRF: the default throttles (anon 20/minute) and the /api/ path rate, in one call."""

    def list(self, request: Request) -> Response:
        return Response({"items": ["a", "b"]})
