"""The durable store: one LMDB environment, one group-committing writer thread."""

from octim.store.env import DATABASES, LOGS, SCHEMA_VERSION, Environment, pack, unpack
from octim.store.store import Append, Delete, Op, Put, Store, open_store

__all__ = [
    "DATABASES",
    "LOGS",
    "SCHEMA_VERSION",
    "Append",
    "Delete",
    "Environment",
    "Op",
    "Put",
    "Store",
    "open_store",
    "pack",
    "unpack",
]
