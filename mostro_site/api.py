"""The REST admin API (django-ninja): one NinjaAPI, routers mounted per app. OWNER: disputes/console work."""

from ninja import NinjaAPI

api = NinjaAPI(title="Mostro admin API", version="1", urls_namespace="api")
