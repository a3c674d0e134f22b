from django.urls import path
from rest_framework.routers import SimpleRouter

from example import views

router = SimpleRouter()
router.register("api/items", views.ItemViewSet, basename="items")

urlpatterns = [
    path("hello/", views.hello),
    path("login/", views.login),
    path("feed/", views.feed),
    path("report/", views.report),
    path("health/", views.health),
    *router.urls,
]
