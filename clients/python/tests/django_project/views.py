"""Views under test: every way of declaring limits the issue lists."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ratelimitd import ALGORITHMS
from ratelimitd.django import rate_limit, ratelimit
from ratelimitd.django.core import Ratelimited
from ratelimitd.drf import (
    AnonRatelimitdThrottle,
    RatelimitdThrottle,
    ScopedRatelimitdThrottle,
    UserRatelimitdThrottle,
)


def report(request: Any) -> JsonResponse:
    """What the view saw: whether it is limited, and the decision's statuses."""
    decision = getattr(request, "ratelimit", None)
    statuses = [
        {"rule": s.rule, "algorithm": s.algorithm, "limit": s.limit, "window": s.window, "shadow": s.shadow}
        for s in (decision.statuses if decision else ())
    ]
    return JsonResponse({"limited": getattr(request, "limited", False), "statuses": statuses})


@rate_limit(key="ip", rate="3/m")
def ip_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@rate_limit(key="user", rate="2/m")
def user_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@rate_limit(
    key=lambda request: request.headers.get("X-Tenant"),
    rate=lambda group, request: "1/m" if request.headers.get("X-Plan") == "free" else "3/m",
)
def callable_view(request: HttpRequest) -> JsonResponse:
    return report(request)


def tenant_key(request: HttpRequest) -> str | None:
    return request.headers.get("X-Tenant")


@rate_limit(key="tests.django_project.views.tenant_key", rate="1/m")
def dotted_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@rate_limit(key="api_key", rate="1/m")
def api_key_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@rate_limit(key="ip", rate="1/m", block=False)
def noblock_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@rate_limit(key="ip", rate="1/m", skip_if=lambda request: request.headers.get("X-Staff") == "1")
def skip_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@ratelimit(key="ip", rate="2/m", group="anon")
@ratelimit(key="user", rate="3/m", group="auth")
def stacked_view(request: HttpRequest) -> JsonResponse:
    return report(request)


def _algorithm_view(algorithm: str) -> Any:
    config = {"bucket_size": 5, "refill_rate": 2.0} if algorithm == "token_bucket" else None

    @rate_limit(key="ip", rate="3/m", algorithm=algorithm, algorithm_config=config, group=f"algo.{algorithm}")
    def view(request: HttpRequest) -> JsonResponse:
        return report(request)

    return view


algorithm_views = {name: _algorithm_view(name) for name in ALGORITHMS}


@rate_limit(key="ip", rate="2/m")
async def async_view(request: HttpRequest) -> JsonResponse:
    return report(request)


@method_decorator(rate_limit(key="ip", rate="2/m"), name="dispatch")
class DispatchView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return report(request)


class MethodView(View):
    @method_decorator(rate_limit(key="ip", rate="2/m"))
    def get(self, request: HttpRequest) -> JsonResponse:
        return report(request)


@rate_limit(key="ip", rate="2/m")
def mw_decorated(request: HttpRequest) -> JsonResponse:
    return report(request)


def plain(request: HttpRequest) -> JsonResponse:
    return report(request)


def denied(request: HttpRequest, exception: Ratelimited) -> JsonResponse:
    """A RATELIMITD['VIEW']."""
    return JsonResponse({"error": "slow down", "code": exception.decision.code}, status=429)


class AnonUserView(APIView):
    throttle_classes = [AnonRatelimitdThrottle, UserRatelimitdThrottle]

    def get(self, request: Request) -> Response:
        return Response({"user": str(request.user)})


class ScopedView(APIView):
    throttle_classes = [ScopedRatelimitdThrottle]
    throttle_scope = "uploads"

    def get(self, request: Request) -> Response:
        return Response({})


class UnscopedView(APIView):
    throttle_classes = [ScopedRatelimitdThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


class BurstThrottle(RatelimitdThrottle):
    scope = "burst"
    rate = "2/m"


class CustomView(APIView):
    throttle_classes = [BurstThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


class ItemViewSet(viewsets.ViewSet):
    throttle_classes = [UserRatelimitdThrottle]

    @rate_limit(key="ip", rate="2/m")
    def list(self, request: Request) -> Response:
        return Response({"limited": getattr(request, "limited", False)})
