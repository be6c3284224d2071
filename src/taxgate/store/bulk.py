"""Appending many rows at the store's own bulk speed, in the caller's transaction.

A batch records a decision, a ledger entry and often a disclosure per request: over a million rows
of each for a national datafile. SQLAlchemy's executemany spends more time preparing each row's
parameters than the database spends storing them, so rows go to the driver directly:
`executemany` on SQLite, `COPY ... FROM STDIN` on PostgreSQL (psycopg). Each value first passes
through the column type's own bind processor, so that what is stored is exactly what an ORM insert
stores (a UTC timestamp as SQLAlchemy writes it); only bytes, which both drivers take as they are,
skip it. Any other database gets SQLAlchemy's Core insert.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from sqlalchemy import Connection, LargeBinary, Table, insert
from sqlalchemy.exc import DBAPIError


@contextmanager
def driver_cursor(connection: Connection, **options) -> Iterator:
    """The driver's own cursor, inside `connection`'s transaction, closed after.

    A stop (Ctrl-C, SIGTERM: KeyboardInterrupt) that lands while the driver works can leave its
    connection mid-command, inside a COPY on PostgreSQL; rolling that back over the wire then fails
    ("another command is already in progress") with a traceback from the pool. So the connection is
    invalidated, as SQLAlchemy does when a stop interrupts its own statements: nobody talks to it
    again, and the server rolls the transaction back when the socket closes."""
    cursor = connection.connection.dbapi_connection.cursor(**options)
    try:
        yield cursor
    except (KeyboardInterrupt, SystemExit):
        connection.invalidate()
        raise
    finally:
        if not connection.invalidated:
            # A generator's cursor (ledger.log.stream) left unfinished by a stop is closed when
            # the generator is collected, perhaps after its connection: nothing is left to close.
            with suppress(connection.dialect.loaded_dbapi.Error):
                cursor.close()


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict]) -> None:
    """Insert `rows` (dicts with the same keys, every column the insert sets) into `table`."""
    if not rows:
        return
    columns = list(rows[0])
    dialect = connection.dialect
    bulk = dialect.name == "sqlite" or (
        dialect.name == "postgresql" and dialect.driver == "psycopg"
    )
    if not bulk:
        connection.execute(insert(table), list(rows))
        return
    processors = [
        None
        if isinstance(table.c[c].type, LargeBinary)
        else table.c[c].type._cached_bind_processor(dialect)
        for c in columns
    ]
    if any(processors):
        values = [
            tuple(p(row[c]) if p else row[c] for c, p in zip(columns, processors)) for row in rows
        ]
    else:
        values = [tuple(row[c] for c in columns) for row in rows]
    names = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
    target = dialect.identifier_preparer.format_table(table)
    if dialect.name == "sqlite":
        statement = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' * len(columns))})"
    else:
        statement = f"COPY {target} ({names}) FROM STDIN"
    try:
        with driver_cursor(connection) as cursor:
            if dialect.name == "sqlite":
                cursor.executemany(statement, values)
            else:
                with cursor.copy(statement) as copy:
                    for value in values:
                        copy.write_row(value)
    except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it (IntegrityError, ...)
        raise DBAPIError.instance(
            statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
