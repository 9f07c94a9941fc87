"""The project's URLs plus one page nobody reviewed (the completeness test's proof of failure)."""

from django.http import HttpResponse
from django.urls import path

from mostro_site.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("unreviewed/", lambda request: HttpResponse("hi"), name="unreviewed")]
