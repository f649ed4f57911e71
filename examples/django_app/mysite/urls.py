from django.contrib import admin
from django.urls import include, path
from store import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("orders/", views.create_order),
    path("jobs/", include("pgwerk.contrib.django.urls")),  # the dashboard, staff only
]
