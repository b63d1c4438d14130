"""Project configuration: settings, ASGI application and URLs."""
