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
    #: An instructor's scenario is theirs alone unless shared with every instructor.
    shared = models.BooleanField(default=False)
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


class ClassSession(models.Model):
    """A class taught with one join code: parallel games of one scenario and their roster."""

    class Assignment(models.TextChoices):
        RANDOM = "random", "Random"
        MANUAL = "manual", "Manual (the instructor seats each student)"
        ROSTER = "roster", "From an uploaded roster"

    code = models.CharField(max_length=8, unique=True)
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="class_sessions"
    )
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="sessions")
    assignment = models.CharField(
        max_length=10, choices=Assignment.choices, default=Assignment.RANDOM
    )
    #: When the instructor started every game; null while students gather in the waiting room.
    started = models.DateTimeField(null=True, blank=True)
    #: Minutes without any event after which the dashboard flags a game as stalled.
    stall_minutes = models.PositiveSmallIntegerField(default=3)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.code} ({self.title})"


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
    #: The class session this game is one of; null for a stand-alone game or a remote match.
    session = models.ForeignKey(
        ClassSession, null=True, blank=True, on_delete=models.CASCADE, related_name="games"
    )
    #: Listed in the public lobby of remote matches.
    public = models.BooleanField(default=False)
    #: Seconds after creation when bots take the seats still empty; null: never.
    bot_fill_after = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "deadline"]),
            models.Index(fields=["public", "status"]),
        ]

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
    #: The bot strategy for this seat (a key of the engine's strategy registry); blank: default.
    bot_strategy = models.CharField(max_length=30, blank=True)
    #: The player a bot is standing in for (after a dropped connection or by the instructor);
    #: the seat goes back to them when they return.
    stand_in_for = models.ForeignKey(
        "accounts.Player",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="stood_in_seats",
    )
    #: When the holder's last connection closed; null while connected or never connected.
    away_since = models.DateTimeField(null=True, blank=True)

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

    # No index of its own: ``unique_event_seq`` begins with the game, so it serves every
    # lookup by game, and a second index would be one more B-tree page written per event
    # (about a third of SQLite's time per command in a batch, bench/README.md).
    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="events", db_index=False)
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

    # No index of its own: ``unique_command_id`` begins with the game (see ``GameEvent.game``).
    game = models.ForeignKey(
        Game, on_delete=models.CASCADE, related_name="commands", db_index=False
    )
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


class SessionMember(models.Model):
    """A student of a class session: a roster line, a joined player, or both, and their seat."""

    session = models.ForeignKey(ClassSession, on_delete=models.CASCADE, related_name="members")
    name = models.CharField(max_length=40)
    player = models.ForeignKey(
        "accounts.Player",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="session_memberships",
    )
    #: The seat assigned (by the roster, the instructor or at random); blank until assigned.
    game = models.ForeignKey(
        Game, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    seat_key = models.CharField(max_length=40, blank=True)
    joined = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["session", "player"], name="unique_session_player")
        ]

    def __str__(self) -> str:
        return f"{self.session.code}/{self.name}"


class Annotation(models.Model):
    """An instructor's note on a game at one seq, shown on the replay timeline."""

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="annotations")
    seq = models.PositiveIntegerField()
    text = models.TextField(max_length=2000)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="annotations",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["game", "seq", "pk"]

    def __str__(self) -> str:
        return f"{self.game_id}@{self.seq}"
