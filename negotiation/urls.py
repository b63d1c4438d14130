from django.urls import path

from negotiation import views

urlpatterns = [
    path("", views.home, name="home"),
]
