from django.urls import path

from negotiation import classroom, matches, replay, views

urlpatterns = [
    path("", views.home, name="home"),
    path("join/", views.join, name="join"),
    path("games/new/", views.new_game, name="new_game"),
    path("g/<str:code>/", views.lobby, name="lobby"),
    path("g/<str:code>/seat/", views.take_seat, name="take_seat"),
    path("g/<str:code>/seat/<str:seat>/", views.seat_link, name="seat"),
    path("g/<str:code>/play/", views.play, name="play"),
    path("g/<str:code>/briefing/", views.briefing_page, name="briefing"),
    path("g/<str:code>/results/", views.results, name="results"),
    path("g/<str:code>/host/", views.host, name="host"),
    path("g/<str:code>/host/<str:token>/", views.host_link, name="host_link"),
    *classroom.urlpatterns,
    *matches.urlpatterns,
    *replay.urlpatterns,
]
