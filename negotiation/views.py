"""Pages of the negotiation app."""

from __future__ import annotations

from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from negotiation.models import Scenario


def home(request: HttpRequest) -> HttpResponse:
    """The front page: what the game is, and the scenarios that can be played."""
    scenarios = Scenario.objects.only("slug", "title", "summary", "builtin").order_by(
        "-builtin", Lower("title"), "slug"
    )
    return render(request, "negotiation/home.html", {"scenarios": scenarios})
