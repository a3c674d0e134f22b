"""Test users from an ``X-Test-User`` header: the part of auth the tests need, without a database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import BaseAuthentication


def user_from(request: Any) -> User | None:
    name = request.META.get("HTTP_X_TEST_USER")
    return User(pk=sum(map(ord, name)), username=name) if name else None


class HeaderUserMiddleware:
    """Stands where AuthenticationMiddleware stands (sync and async capable)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.user = user_from(request) or AnonymousUser()

        async def auser() -> Any:
            return request.user

        request.auser = auser
        return self.get_response(request)


class HeaderAuthentication(BaseAuthentication):
    """DRF's side: authenticates inside the view, as token authentication would."""

    def authenticate(self, request: Any) -> tuple[User, None] | None:
        user = user_from(request)
        return (user, None) if user else None
