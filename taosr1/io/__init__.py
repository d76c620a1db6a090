"""Reading and writing the lakehouse: one TableStore interface, two Delta backends, one ``open_store``."""

from taosr1.io.store import choose_backend, open_store
from taosr1.io.tables import TableStore, WriteResult

__all__ = ["TableStore", "WriteResult", "choose_backend", "open_store"]
