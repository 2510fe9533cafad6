"""pgvector on psycopg connections: numpy arrays in and out as `vector`.

The type's catalogue entry is fetched once per process; registering it on a
connection afterwards costs no round trip, so pooled connections register on use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection
from psycopg.types import TypeInfo

__all__ = ["as_array", "register_vector"]

_info: TypeInfo | None = None


async def register_vector(conn: AsyncConnection[Any]) -> None:
    """Make `conn` send numpy float arrays as `vector` and read `vector` as numpy arrays."""
    global _info
    from pgvector.psycopg.vector import register_vector_info

    if _info is None:
        info = await TypeInfo.fetch(conn, "vector")
        if info is None:
            raise RuntimeError("the pgvector extension is not installed in this database")
        _info = info
    register_vector_info(conn, _info)


def as_array(value: Any) -> npt.NDArray[np.float32]:
    """A `vector` read from the database as a float32 array (pgvector returns `Vector` objects)."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy is not None else value, dtype=np.float32)
