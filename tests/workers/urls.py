from django.urls import include, path

urlpatterns = [path("", include("workers.urls")), path("", include("controlplane.urls"))]
