"""Per-member columns in content-addressed chunks: what lets a round, a standing or a set of
Shapley values hold 100,000 contributors without any one document growing with the crowd.

A part (a round's members, its awards, a campaign's standing after a round) is a few equal
columns split into chunks of at most about `CHUNK_BYTES`, each chunk one document whose `_id` is
`<owner>|<part>|<digest>|<chunk>` and which says which rows it holds. The digest is of the
columns' content, so a part is written once and never changes: two writers of the same part
write the same documents (the second's inserts collide and are ignored), two writers of
different content write different parts, and the owner's small document names the digest it
means. Readers can therefore cache a part by its key forever. Numbers are stored as raw
float64 or int64 bytes, strings as JSON text: on SecantusDB a chunk of thousands of rows costs
about as much as a one-row insert.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
from bson import Binary
from pymongo.asynchronous.client_session import AsyncClientSession

from crowdsft.adapters.mongo import CHUNKS, Database, Document, insert_new

LARGE_PART_ROWS = 10_000  # parts built or decoded in a thread (not on the event loop)
CHUNK_BYTES = 256 * 1024  # well under MongoDB's 16 MB and Kafka-sized reads alike
# Parts kept in memory per process: a crowd, a round's grouping and awards, standings.
CACHED_PARTS = 32

# A list (of strings, or of lists of strings) or a numeric array; readers know what they
# stored, so a column is typed where it is read.
Column = Any
Columns = dict[str, Column]
ColumnsIn = Mapping[str, Column]  # what a writer hands over


def _rows(columns: ColumnsIn) -> int:
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns of unequal length: {sorted(lengths)}")
    return lengths.pop()


def _row_bytes(columns: ColumnsIn, rows: int) -> float:
    """About how many bytes one row of the columns takes once encoded."""
    size = 0.0
    for column in columns.values():
        if isinstance(column, np.ndarray):
            size += 8 * (column[0].size if column.ndim > 1 and rows else 1)
        elif rows:
            sample = column[: min(rows, 64)]
            size += len(json.dumps(sample, separators=(",", ":"))) / len(sample)
    return max(size, 1.0)


def rows_per_chunk(columns: ColumnsIn) -> int:
    rows = _rows(columns)
    return max(1, int(CHUNK_BYTES // _row_bytes(columns, rows)))


def _encoded(column: Column, start: int, stop: int) -> Document:
    if isinstance(column, np.ndarray):
        block = np.ascontiguousarray(column[start:stop])
        kind = "f8" if block.dtype.kind == "f" else "i8"
        data = block.astype("<f8" if kind == "f8" else "<i8", copy=False).tobytes()
        return {"kind": kind, "shape": list(block.shape), "data": Binary(data)}
    return {"kind": "json", "data": json.dumps(column[start:stop], separators=(",", ":"))}


def _decoded(field: Document) -> Column:
    if field["kind"] == "json":
        loaded: list[Any] = json.loads(field["data"])
        return loaded
    dtype = "<f8" if field["kind"] == "f8" else "<i8"
    return np.frombuffer(bytes(field["data"]), dtype=dtype).reshape(field["shape"])


def _joined(pieces: list[Column]) -> Column:
    if isinstance(pieces[0], np.ndarray):
        return np.concatenate([np.asarray(p) for p in pieces])
    return [item for piece in pieces for item in piece]


def part_documents(owner: str, part: str, columns: ColumnsIn) -> tuple[str, list[Document]]:
    """The part's digest and its chunk documents (at least one, so an empty part exists)."""
    rows = _rows(columns)
    step = rows_per_chunk(columns)
    bodies = []
    for start in range(0, max(rows, 1), step):
        stop = min(start + step, rows)
        encoded = {name: _encoded(col, start, stop) for name, col in sorted(columns.items())}
        bodies.append((start, stop, encoded))
    digest = hashlib.sha256()
    for _, _, body in bodies:
        for name, field in body.items():
            digest.update(name.encode())
            data = field["data"]
            digest.update(data if isinstance(data, bytes) else data.encode())
    key = digest.hexdigest()[:16]
    docs = [
        {"_id": f"{_prefix(owner, part, key)}{index:05d}", "owner": owner, "start": start,
         "stop": stop, "columns": body}
        for index, (start, stop, body) in enumerate(bodies)
    ]  # fmt: skip
    return key, docs


def part_columns(docs: list[Document]) -> Columns:
    """A part's columns from its chunk documents, in chunk order."""
    pieces: dict[str, list[Column]] = {}
    for doc in sorted(docs, key=lambda d: str(d["_id"])):
        for name, field in doc["columns"].items():
            pieces.setdefault(name, []).append(_decoded(field))
    return {name: _joined(parts) for name, parts in pieces.items()}


def _prefix(owner: str, part: str, digest: str) -> str:
    return f"{owner}|{part}|{digest}|"


def _range(prefix: str) -> Document:
    # "|" + 1 is "}": every id of the part sorts between the two bounds, nothing else does.
    return {"_id": {"$gte": prefix, "$lt": prefix[:-1] + "}"}}


class ChunkStore:
    """Writes parts once and reads them back whole (or one row), cached by their key."""

    def __init__(self, db: Database) -> None:
        self._chunks = db[CHUNKS]
        self._cache: OrderedDict[str, Columns] = OrderedDict()

    async def write(
        self, owner: str, part: str, columns: ColumnsIn, session: AsyncClientSession | None = None
    ) -> str:
        """Stores the part and returns its digest; writing it again changes nothing."""
        # Encoding and hashing a large part takes a while: off the event loop.
        if _rows(columns) > LARGE_PART_ROWS:
            digest, docs = await asyncio.to_thread(part_documents, owner, part, columns)
        else:
            digest, docs = part_documents(owner, part, columns)
        prefix = _prefix(owner, part, digest)
        if session is None:
            if prefix not in self._cache:  # cached only once it is stored (or was read back)
                await insert_new(self._chunks, docs)
            self._remember(prefix, dict(columns))
        else:  # inside a transaction a collision would abort it: skip what is there
            there = await self._chunk_ids(prefix, session)
            fresh = [doc for doc in docs if doc["_id"] not in there]
            if fresh:
                await self._chunks.insert_many(fresh, session=session)
            # Not cached: the transaction may still abort, and its retry must write again.
        return digest

    async def _chunk_ids(self, prefix: str, session: AsyncClientSession | None) -> set[str]:
        cursor = self._chunks.find(_range(prefix), {"_id": 1}, session=session)
        return {doc["_id"] async for doc in cursor}

    async def read(
        self, owner: str, part: str, digest: str, session: AsyncClientSession | None = None
    ) -> Columns:
        prefix = _prefix(owner, part, digest)
        cached = self._cache.get(prefix)
        if cached is not None:
            self._cache.move_to_end(prefix)
            return cached
        docs = [doc async for doc in self._chunks.find(_range(prefix), session=session)]
        if not docs:
            raise LookupError(f"part {prefix} is not in the store")
        columns = (
            await asyncio.to_thread(part_columns, docs) if len(docs) > 1 else part_columns(docs)
        )
        self._remember(prefix, columns)
        return columns

    async def read_row(self, owner: str, part: str, digest: str, row: int) -> dict[str, Any]:
        """One row of a part, reading only the chunk that holds it (or the cached part)."""
        prefix = _prefix(owner, part, digest)
        cached = self._cache.get(prefix)
        if cached is None:
            query = _range(prefix) | {"start": {"$lte": row}, "stop": {"$gt": row}}
            doc = await self._chunks.find_one(query)
            if doc is None:
                raise LookupError(f"row {row} of part {prefix} is not in the store")
            cached, row = part_columns([doc]), row - int(doc["start"])
        return {name: column[row] for name, column in cached.items()}

    def _remember(self, prefix: str, columns: Columns) -> None:
        self._cache[prefix] = columns
        self._cache.move_to_end(prefix)
        while len(self._cache) > CACHED_PARTS:
            self._cache.popitem(last=False)
