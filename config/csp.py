"""A Content-Security-Policy header on every response (Django before 6.0 has none built in).

The policy is ``settings.RATIFY_CONTENT_SECURITY_POLICY`` (directive -> sources). Scripts come
only from the site's own files, never inline: a script injected into a page does not run. The
websocket origin of the request (``ws://`` or ``wss://`` and its host, which Django has checked
against ``ALLOWED_HOSTS``) is added to ``connect-src``: browsers that predate CSP level 3 do not
count a websocket to the page's own host as ``'self'``.

A response that already carries a policy keeps it (the replay's SVG charts send a stricter one).
While ``DEBUG`` is on, Django's technical error pages (inline styles and scripts) are left
without a policy so they stay readable.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


def policy_for(request: HttpRequest) -> str:
    """The policy's header value for ``request``."""
    directives = {
        name: list(sources) for name, sources in settings.RATIFY_CONTENT_SECURITY_POLICY.items()
    }
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    if host and "connect-src" in directives:
        directives["connect-src"].append(("wss://" if request.is_secure() else "ws://") + host)
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds ``Content-Security-Policy`` to every response that has none."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if HEADER in response:
            return response
        if settings.DEBUG and response.status_code >= 400:
            return response
        response[HEADER] = policy_for(request)
        return response
