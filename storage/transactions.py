"""What every part of the store shares: one database, transactions, and row lookups.

:class:`StoreBase` holds the :class:`~storage.db.Database` and runs each
repository method as one transaction, retried as a whole on transient
failures. The methods themselves live in one module per concern
(:mod:`storage.model_rows`, :mod:`storage.search_rows`,
:mod:`storage.validation_rows`) and are combined in :class:`storage.store.Store`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from dmo.errors import SearchError, StoreError
from storage import db
from storage.models import SearchRow

T = TypeVar("T")


class StoreBase:
    def __init__(self, database: db.Database):
        self._db = database

    def _run(self, work: Callable[[Session], T], *, write: bool, doing: str) -> T:
        return self._db.transaction(work, write=write, doing=doing)

    def _read(self, work: Callable[[Session], T], doing: str) -> T:
        return self._db.transaction(work, write=False, doing=doing)

    def _write_racing(self, work: Callable[[Session], T], *, doing: str) -> T:
        return self._db.write_racing(work, doing=doing)

    @staticmethod
    def _get(session: Session, row_type: type[Any], row_id: int, what: str) -> Any:
        row = session.get(row_type, row_id)
        if row is None:
            if row_type is SearchRow:
                raise SearchError(f"no search with id {row_id}", where="store",
                                  hint="list them with `dmo searches`")
            raise StoreError(f"no {what} with id {row_id}", where="store")
        return row
