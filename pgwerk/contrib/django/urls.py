"""``path("jobs/", include("pgwerk.contrib.django.urls"))``: the dashboard, staff only."""

from __future__ import annotations

from django.urls import re_path

from pgwerk.contrib.django.views import default_dashboard_view

app_name = "pgwerk"

urlpatterns = [
    re_path(r"^(?P<path>.*)$", default_dashboard_view, name="dashboard"),
]
