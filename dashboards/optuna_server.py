"""optuna-dashboard over a read-only database connection, for `dmo dashboard --optuna`.

optuna-dashboard has no read-only switch: its API deletes studies and writes
notes. Served over a connection the database itself keeps read-only
(SQLite ``mode=ro``, PostgreSQL ``default_transaction_read_only``), every
write it attempts fails in the database and nothing changes. The store URL
comes from ``$DMO_OPTUNA_STORAGE_URL``, never the command line, where ``ps``
would show its password.

    DMO_OPTUNA_STORAGE_URL=... python -m dashboards.optuna_server HOST PORT
"""

from __future__ import annotations

import os
import sys
from typing import Any

STORAGE_URL_ENV = "DMO_OPTUNA_STORAGE_URL"


def read_only(url: str) -> tuple[str, dict[str, Any]]:
    """The URL and engine arguments of a connection that can read and never write."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///file:{parsed.database}?mode=ro&uri=true", {}
    return url, {"connect_args": {"options": "-c default_transaction_read_only=on"}}


def main(argv: list[str]) -> None:
    import optuna
    import optuna_dashboard

    host, port = argv[0], int(argv[1])
    url, engine_kwargs = read_only(os.environ[STORAGE_URL_ENV])
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
    optuna_dashboard.run_server(storage, host=host, port=port)


if __name__ == "__main__":
    main(sys.argv[1:])
