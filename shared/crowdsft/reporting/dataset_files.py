"""A dataset export on disk: the rows as JSON Lines or Parquet, and the card beside them."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

DatasetFormat = Literal["jsonl", "parquet"]


def arrow_schema() -> Any:
    """Fixed column types, so an export with no ratings or no rounds yet still loads as the
    same dataset (inferred from all-null columns, Parquet would type them `null`)."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    usage = pa.struct([("round_index", pa.int64()), ("model_id", pa.string()),
                       ("won", pa.bool_())])  # fmt: skip
    return pa.schema([
        ("contribution_id", pa.string()),
        ("submission_event_id", pa.string()),
        ("contributor", pa.string()),
        ("messages", pa.list_(message)),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("rating", pa.int64()),
        ("correction", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("used_in", pa.list_(usage)),
        ("points", pa.float64()),
        ("shapley", pa.float64()),
        ("shapley_std_error", pa.float64()),
    ])  # fmt: skip


def encoded(rows: Sequence[Mapping[str, Any]], fmt: DatasetFormat) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(list(rows), schema=arrow_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def data_file_name(fmt: DatasetFormat) -> str:
    return f"data/train.{fmt}"


def write_dataset(out: Path, rows: Sequence[Mapping[str, Any]], card: str,
                  fmt: DatasetFormat) -> Path:  # fmt: skip
    """`out/data/train.<fmt>` and `out/README.md`; returns the data file."""
    data = out / data_file_name(fmt)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(encoded(rows, fmt))
    (out / "README.md").write_text(card)
    return data
