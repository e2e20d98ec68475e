"""CORS by path: the widget's customer endpoints answer any page that embeds it (they take a bearer
token, never cookies), staff and admin endpoints only the origins named in settings."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware

from assistant.config import Settings

# What widget.js calls from the page that embeds it.
WIDGET_PATHS = ("/api/sessions", "/api/chat", "/api/conversations", "/api/feedback", "/api/suggestions",
                "/api/contact")
COMMON = dict(allow_credentials=False, allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
              allow_headers=["Authorization", "Content-Type", "X-Customer-Token", "X-API-Key", "Idempotency-Key"],
              expose_headers=["Retry-After", "X-Request-Id"], max_age=600)


class PathScopedCORS:
    def __init__(self, app, settings: Settings):
        self.app = app
        self.widget = CORSMiddleware(app, allow_origins=settings.widget_origins, **COMMON)
        self.staff = CORSMiddleware(app, allow_origins=settings.allowed_origins, **COMMON)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(WIDGET_PATHS):
            return await self.widget(scope, receive, send)
        return await self.staff(scope, receive, send)
