"""All SQL of the service lives in this package (one module per aggregate).

Handlers and domain code call the repository functions here with a ``sqlite_utils.Database``
handed to them by :class:`service.storage.database.Database`, which runs reads on a thread pool
and every write on one writer thread inside ``BEGIN IMMEDIATE``.
"""

from .database import Conflict, Database, RecordNotFound

__all__ = ["Database", "RecordNotFound", "Conflict"]
