"""teleread's storage on PostgreSQL (``TELEREAD_DATABASE_URL=postgresql://…``): the same storage
functions as on SQLite, through a connection that speaks their sqlite-utils surface
(:mod:`.connection`), their SQL translated where the two dialects differ (:mod:`.dialect`), and a
schema of its own (:mod:`.schema`). docs/scaling.md says why and what it changes."""
