from django.urls import path
from rest_framework.routers import SimpleRouter

from tests.django_project import views

router = SimpleRouter()
router.register("drf/items", views.ItemViewSet, basename="items")

urlpatterns = [
    path("ip", views.ip_view),
    path("user", views.user_view),
    path("callable", views.callable_view),
    path("noblock", views.noblock_view),
    path("dotted", views.dotted_view),
    path("api-key", views.api_key_view),
    path("skip", views.skip_view),
    path("stacked", views.stacked_view),
    *[path(f"algo/{name}", view) for name, view in views.algorithm_views.items()],
    path("async", views.async_view),
    path("cbv/dispatch", views.DispatchView.as_view()),
    path("cbv/method", views.MethodView.as_view()),
    path("mw/api/auth/login", views.plain),
    path("mw/api/items", views.plain),
    path("mw/api/decorated", views.mw_decorated),
    path("mw/other", views.plain),
    path("mw/health/", views.plain),
    path("mw/async", views.async_view),
    path("drf/anon-user", views.AnonUserView.as_view()),
    path("drf/scoped", views.ScopedView.as_view()),
    path("drf/unscoped", views.UnscopedView.as_view()),
    path("drf/custom", views.CustomView.as_view()),
    *router.urls,
]
