"""The database the settings name: PostgreSQL at ``TELEREAD_DATABASE_URL``, else the SQLite file
in the data directory (the embedded default)."""

from __future__ import annotations

from ..settings import Settings
from .database import Database


def open_database(settings: Settings, *, checkpoints: bool = True, readers: int = 4) -> Database:
    """Migrated and ready. ``checkpoints``: SQLite's WAL checkpointer (one process per file)."""
    if settings.database_url:
        from .postgres.database import PostgresDatabase  # psycopg only where it is used

        return PostgresDatabase(settings.database_url, settings.database_path, readers=readers)
    return Database(settings.database_path, readers=readers, checkpoints=checkpoints)
