"""The project's SQLite database backend: Django's, with each statement's placeholders rewritten
once per statement text instead of on every execution (``base``)."""
