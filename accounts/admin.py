"""Players in the admin, read-only: they are created by joining a game."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from accounts.models import Player
from negotiation.admin import ReadOnly

if TYPE_CHECKING:
    PlayerModelAdmin = admin.ModelAdmin[Player]
else:
    PlayerModelAdmin = admin.ModelAdmin


@admin.register(Player)
class PlayerAdmin(ReadOnly, PlayerModelAdmin):
    list_display = ("display_name", "user", "created")
    search_fields = ("display_name",)
    readonly_fields = ("id", "display_name", "user", "created")
