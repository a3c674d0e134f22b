"""The test project: no database (users are unsaved objects made from a header)."""

SECRET_KEY = "tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django_project.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "ratelimitd.django",
]
MIDDLEWARE = ["tests.django_project.auth.HeaderUserMiddleware"]
DATABASES: dict[str, object] = {}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tests.django_project.auth.HeaderAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "3/minute", "uploads": "1/m"},
}
RATELIMITD = {"TARGET": "127.0.0.1:1"}  # set per test to the running service
