"""URLs of the JSON API: ``path("ai/", include("django_ai_fields.urls"))``."""

from django.urls import path

from .http import views

app_name = "django_ai_fields"

urlpatterns = [
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/retry/", views.job_bulk_retry, name="job-bulk-retry"),
    path("jobs/queue-pending/", views.queue_pending, name="queue-pending"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="job-retry"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("status/<str:model>/<path:pk>/<str:field>/", views.row_status, name="row-status"),
    path("health/", views.worker_health, name="health"),
    path("diagnostics/", views.diagnostics, name="diagnostics"),
    path("analytics/usage/", views.usage_analytics, name="analytics-usage"),
    path("analytics/performance/", views.performance, name="analytics-performance"),
]
