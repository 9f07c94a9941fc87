"""The REST root: the NinjaAPI (`root.api`), token authentication (`auth`) and tokens (`tokens`).

Kept free of imports so an app router may import `mostro_site.api.auth` without loading the
whole API (which imports the routers)."""
