"""The durable store: one LMDB environment, one group-committing writer thread."""

from octim.store.env import DATABASES, SCHEMA_VERSION, Environment, pack, unpack
from octim.store.store import Delete, Op, Put, Store, open_store

__all__ = [
    "DATABASES",
    "SCHEMA_VERSION",
    "Delete",
    "Environment",
    "Op",
    "Put",
    "Store",
    "open_store",
    "pack",
    "unpack",
]
