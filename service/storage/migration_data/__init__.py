"""Frozen data and code of migrations, as they were on the day each migration was written.

A migration that called today's live code (the dashboard's fact builder, the report templates)
would change meaning whenever that code changes: a database migrated last year and one migrated
today would differ. So each migration that needs more than a few SQL statements holds its own
copy here, imports nothing outside this package but the standard library, sqlite-utils and numpy,
and is never edited once released (a change is a new migration).
"""
