"""Web requests' log context: role `web`, and the order id of order pages and API calls."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from nostrbridge.log_context import bind, unbind

ORDER_KWARGS = ("order_id",)


class LogContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        tokens = bind(role="web")
        try:
            return self.get_response(request)
        finally:
            _unbind_view(request)
            unbind(tokens)

    async def _acall(self, request):
        tokens = bind(role="web")
        try:
            return await self.get_response(request)
        finally:
            _unbind_view(request)
            unbind(tokens)

    def process_view(self, request, view_func, view_args, view_kwargs):
        order_id = next((view_kwargs[name] for name in ORDER_KWARGS if name in view_kwargs), None)
        if order_id is not None:
            request.log_context_tokens = bind(order_id=order_id)
        return None


def _unbind_view(request) -> None:
    try:
        unbind(getattr(request, "log_context_tokens", []))
    except ValueError:
        pass  # bound in a context copy (a sync view under ASGI): it ended with that copy
