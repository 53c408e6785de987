from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),  # only while DEBUG
    path("admin/", admin.site.urls),
    path("ai/", include("django_ai_fields.urls")),  # JSON API; the badges poll ai/status/...
    path("django-rq/", include("django_rq.urls")),
    path("", include("leads.urls")),
]
