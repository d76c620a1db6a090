"""Reading and writing the lakehouse: one TableStore interface, two Delta backends."""

from taosr1.io.tables import TableStore, WriteResult, open_store

__all__ = ["TableStore", "WriteResult", "open_store"]
