from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from negotiation.models import Scenario

if TYPE_CHECKING:
    # ModelAdmin is generic only in django-stubs; at run time it is a plain class.
    ScenarioModelAdmin = admin.ModelAdmin[Scenario]
else:
    ScenarioModelAdmin = admin.ModelAdmin


@admin.register(Scenario)
class ScenarioAdmin(ScenarioModelAdmin):
    list_display = ("title", "slug", "builtin", "owner", "updated")
    list_filter = ("builtin",)
    search_fields = ("title", "slug", "summary")
    readonly_fields = ("created", "updated")
