"""URLs of the workers app that are not API routes (included at the site root)."""
from django.urls import path

from workers.login_link import login_with_token

urlpatterns = [path("login/<str:token>", login_with_token, name="login-link")]
