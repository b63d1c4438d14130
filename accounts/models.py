"""People: players join with a code and a display name, without an account."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Player(models.Model):
    """A person at one browser, known by the session cookie; no account needed.

    The session holds the player's id (``SESSION_KEY``); a signed-in user gets the same player
    on every device.
    """

    SESSION_KEY = "ratify_player"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(max_length=40)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="players",
    )
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name
