"""The admin: scenarios are editable; games, seats, events and command records are read-only
(a game's truth is its append-only log, written only by ``services``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from negotiation.models import (
    Annotation,
    ClassSession,
    Game,
    GameCommand,
    GameEvent,
    Scenario,
    Seat,
    SessionMember,
)

if TYPE_CHECKING:
    # ModelAdmin is generic only in django-stubs; at run time it is a plain class.
    ScenarioModelAdmin = admin.ModelAdmin[Scenario]
    GameModelAdmin = admin.ModelAdmin[Game]
    EventModelAdmin = admin.ModelAdmin[GameEvent]
    CommandModelAdmin = admin.ModelAdmin[GameCommand]
    SeatInline = admin.TabularInline[Seat, Game]
else:
    ScenarioModelAdmin = GameModelAdmin = EventModelAdmin = CommandModelAdmin = admin.ModelAdmin
    SeatInline = admin.TabularInline


class ReadOnly:
    """No adding, changing or deleting through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Scenario)
class ScenarioAdmin(ScenarioModelAdmin):
    list_display = ("title", "slug", "builtin", "shared", "owner", "updated")
    list_filter = ("builtin", "shared")
    search_fields = ("title", "slug", "summary")
    readonly_fields = ("created", "updated")


class SeatsInline(ReadOnly, SeatInline):
    model = Seat
    fields = ("key", "role", "country", "display_name", "bot", "player")
    readonly_fields = fields
    extra = 0


@admin.register(Game)
class GameAdmin(ReadOnly, GameModelAdmin):
    list_display = ("code", "scenario", "status", "phase", "last_seq", "created_by", "created")
    list_filter = ("status", "scenario")
    search_fields = ("code",)
    readonly_fields = [f.name for f in Game._meta.fields if f.name != "host_token"]
    exclude = ("host_token",)
    inlines = [SeatsInline]


@admin.register(GameEvent)
class GameEventAdmin(ReadOnly, EventModelAdmin):
    list_display = ("game", "seq", "type", "created")
    list_filter = ("type",)
    search_fields = ("game__code",)
    readonly_fields = ("game", "seq", "type", "payload", "created")


@admin.register(GameCommand)
class GameCommandAdmin(ReadOnly, CommandModelAdmin):
    list_display = ("game", "issuer", "client_id", "name", "accepted", "code", "last_seq")
    list_filter = ("accepted", "name")
    search_fields = ("game__code", "issuer", "client_id")
    readonly_fields = (
        "game",
        "issuer",
        "client_id",
        "name",
        "accepted",
        "last_seq",
        "code",
        "message",
        "created",
    )


if TYPE_CHECKING:
    SessionModelAdmin = admin.ModelAdmin[ClassSession]
    AnnotationModelAdmin = admin.ModelAdmin[Annotation]
    MemberInline = admin.TabularInline[SessionMember, ClassSession]
else:
    SessionModelAdmin = AnnotationModelAdmin = admin.ModelAdmin
    MemberInline = admin.TabularInline


class MembersInline(ReadOnly, MemberInline):
    model = SessionMember
    fields = ("name", "player", "game", "seat_key", "joined")
    readonly_fields = fields
    extra = 0


@admin.register(ClassSession)
class ClassSessionAdmin(ReadOnly, SessionModelAdmin):
    """Sessions are run from their dashboard; the admin shows them for support."""

    list_display = ("code", "title", "owner", "scenario", "assignment", "started", "created")
    list_filter = ("assignment",)
    search_fields = ("code", "title", "owner__username")
    readonly_fields = [f.name for f in ClassSession._meta.fields]
    inlines = [MembersInline]


@admin.register(Annotation)
class AnnotationAdmin(ReadOnly, AnnotationModelAdmin):
    list_display = ("game", "seq", "author", "created")
    readonly_fields = ("game", "seq", "text", "author", "created")
