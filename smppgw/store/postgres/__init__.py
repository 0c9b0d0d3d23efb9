"""The shared store: one PostgreSQL database (psycopg 3), which several gateway nodes can use."""

from smppgw.store.postgres.schema import SCHEMA_VERSION
from smppgw.store.postgres.store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore"]
