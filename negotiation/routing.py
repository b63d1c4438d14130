"""WebSocket routes, mounted by ``config.asgi`` under Channels' ``URLRouter``."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
