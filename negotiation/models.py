"""Database models of the negotiation app.

The rules live in ``negotiation.engine`` (pure Python); these models only store its data.
"""

from __future__ import annotations

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
