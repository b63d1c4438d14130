"""WebSocket routes, mounted by ``config.asgi`` under Channels' ``URLRouter``."""

from django.urls import URLPattern, path

from negotiation.consumers import GameConsumer
from negotiation.dashboard import DashboardConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/games/<str:code>/", GameConsumer.as_asgi()),
    path("ws/sessions/<str:code>/", DashboardConsumer.as_asgi()),
]
