"""The version of the result format: one number for every file sagasim writes.

``run.json`` and ``sweep.json`` hold it as ``"schema"``; every Parquet table
holds it in its file metadata under the key ``sagasim.schema``. It changes
when a reader written for the previous version could misread a file: a column
added, removed, renamed or retyped, or the meaning of a value changed (see
docs/results.md). Version 1 is the format before the number was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The version this build writes (and the only one it reads).
SCHEMA_VERSION = 2
#: The key of the version in a Parquet file's metadata.
PARQUET_KEY = b"sagasim.schema"
#: List columns (of strings), typed so even when every list is empty.
LIST_COLUMNS: tuple[str, ...] = ("reasons", "anomalies")


def arrow_table(frame: Any) -> Any:
    """``frame`` (a DataFrame) as an Arrow table in this schema: the list
    columns typed, the schema version in its metadata (a Parquet file written
    from it carries both)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in LIST_COLUMNS:
        if name in table.column_names:
            i = table.column_names.index(name)
            column = table.column(name)
            if column.null_count == len(column):  # no rows (or none known): pandas typed it float
                column = pa.nulls(len(column), pa.list_(pa.string()))
            table = table.set_column(i, name, column.cast(pa.list_(pa.string())))
    return table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: str(SCHEMA_VERSION).encode()})


def write_parquet(frame: Any, path: str | Path) -> None:
    """Write ``frame`` (a DataFrame) as Parquet, with the schema version in its metadata."""
    import pyarrow.parquet as pq

    pq.write_table(arrow_table(frame), path)


def parquet_version(metadata: dict[bytes, bytes] | None) -> int | str | None:
    """The schema version a Parquet file's metadata names (None when it names none:
    the folder's ``run.json`` or ``sweep.json`` is then the authority)."""
    raw = (metadata or {}).get(PARQUET_KEY)
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    return int(text) if text.isdigit() else text


def check_version(version: Any, where: str | Path) -> None:
    """Refuse a file of another schema version than this build's, saying what to do.

    ``version`` is what the file says (``None``: it says nothing, version 1).
    """
    from sim.errors import SagasimError

    found = 1 if version is None else version
    if found == SCHEMA_VERSION:
        return
    if isinstance(found, int) and not isinstance(found, bool) and found > SCHEMA_VERSION:
        raise SagasimError(
            f"{where}: written with result schema {found}, newer than this sagasim reads ({SCHEMA_VERSION}); "
            "upgrade sagasim (pip install -U sagasim) to read it"
        )
    if isinstance(found, int) and not isinstance(found, bool) and 1 <= found < SCHEMA_VERSION:
        raise SagasimError(
            f"{where}: written with result schema {found} by an older sagasim; this one reads schema "
            f"{SCHEMA_VERSION} only (see docs/results.md); write it again with this sagasim (the command is in "
            "its run.json or sweep.json)"
        )
    raise SagasimError(f"{where}: damaged: its schema version {found!r} is not a version number; write it again")
