"""How large what the services wrote got: the largest document per collection."""

from __future__ import annotations

import bson

from crowdsft.adapters import mongo

ROUND_COLLECTIONS = (mongo.ROUNDS, mongo.CHUNKS, mongo.MODELS, mongo.SHAPLEY, mongo.CAMPAIGNS,
                     mongo.ARTIFACTS)  # fmt: skip


async def largest_documents(
    db: mongo.Database, collections: tuple[str, ...] = ROUND_COLLECTIONS
) -> dict[str, int]:
    """The largest BSON document (bytes) in each collection."""
    sizes = {}
    for name in collections:
        largest = 0
        async for raw in db[name].find({}):
            largest = max(largest, len(bson.encode(raw)))
        sizes[name] = largest
    return sizes
