"""Database models of the negotiation app.

The rules live in ``negotiation.engine`` (pure Python). A game is its append-only log of
``GameEvent`` rows; ``Game`` and ``Seat`` hold projections of that log (status, phase, deadline,
who sits where) for listing and lookups, written by ``services`` in the same transaction as the
events they follow from.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class Scenario(models.Model):
    """A scenario available to play: a built-in file or one an instructor authored.

    ``definition`` holds the engine's normalized scenario (``Scenario.to_dict()``), every default
    filled in, so the engine can rebuild it with ``scenario_from_dict``.
    """

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    definition = models.JSONField()
    builtin = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="scenarios",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "slug"]

    def __str__(self) -> str:
        return f"{self.title} ({self.slug})"


class Game(models.Model):
    """One game of a scenario, joined with ``code``. Its truth is its event log."""

    class Status(models.TextChoices):
        LOBBY = "lobby", "Waiting to start"
        ACTIVE = "active", "In play"
        ENDED = "ended", "Ended"

    code = models.CharField(max_length=8, unique=True)
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="games")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LOBBY)
    phase = models.CharField(max_length=20, default="lobby")
    #: The current phase's deadline in seconds since the epoch (a projection of the state), so
    #: timers can be set again after a restart; null when none runs.
    deadline = models.FloatField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    #: The secret of the host link: whoever opens it may run the game.
    host_token = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="games",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["status", "deadline"])]

    def __str__(self) -> str:
        return f"{self.code} ({self.scenario.slug})"


class Seat(models.Model):
    """A role in a game: a chief or a constituent of one country, and who holds it."""

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="seats")
    key = models.CharField(max_length=40)
    role = models.CharField(max_length=20)
    country = models.CharField(max_length=40)
    order = models.PositiveSmallIntegerField(default=0)
    player = models.ForeignKey(
        "accounts.Player",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="seats",
    )
    display_name = models.CharField(max_length=40, blank=True)
    bot = models.BooleanField(default=False)

    class Meta:
        ordering = ["game", "order"]
        constraints = [models.UniqueConstraint(fields=["game", "key"], name="unique_seat_key")]

    def __str__(self) -> str:
        return f"{self.game.code}/{self.key}"

    @property
    def occupied(self) -> bool:
        return self.bot or self.player_id is not None


class GameEvent(models.Model):
    """One event of a game's log, numbered ``seq`` = 1, 2, 3, ... Rows are never changed or
    deleted; the unique ``(game, seq)`` turns a concurrent write into a clean conflict."""

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    payload = models.JSONField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["game", "seq"]
        constraints = [models.UniqueConstraint(fields=["game", "seq"], name="unique_event_seq")]

    def __str__(self) -> str:
        return f"{self.game_id}#{self.seq} {self.type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert only. Raises ``ValueError`` on an attempt to change a stored event."""
        if not self._state.adding:
            raise ValueError("game events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Raises ``ValueError``: game events are append-only."""
        raise ValueError("game events are append-only")


class GameCommand(models.Model):
    """What became of one command id of one issuer: applied (with the last seq it caused) or
    refused (with the code and message). A retried id gets this answer again."""

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="commands")
    issuer = models.CharField(max_length=80)
    client_id = models.CharField(max_length=80)
    name = models.CharField(max_length=40)
    accepted = models.BooleanField()
    last_seq = models.PositiveIntegerField(null=True, blank=True)
    code = models.CharField(max_length=40, blank=True)
    message = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["game", "issuer", "client_id"], name="unique_command_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.game_id} {self.issuer} {self.client_id}"
