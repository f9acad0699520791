"""Moved to :mod:`infoaudit.results.schema`; ``infoaudit.audits.results`` re-exports its public
names.

(The results document of ``infoaudit run``: a versioned JSON schema, written incrementally and atomically.)
"""
from __future__ import annotations

from ..results.schema import (
    MAX_STORED_ELEMENTS,
    MAX_STORED_SHRUNK,
    SCHEMA,
    VERSION,
    add_group,
    decode_args,
    decode_array,
    encode_args,
    encode_array,
    environment,
    jsonable,
    load,
    new_document,
    now,
    num,
    unnum,
    worst_dict,
    write_atomic,
)

__all__ = ["SCHEMA", "VERSION", "MAX_STORED_SHRUNK", "MAX_STORED_ELEMENTS", "now", "num", "unnum",
           "encode_array", "decode_array", "encode_args", "decode_args", "worst_dict", "jsonable",
           "environment", "new_document", "load", "write_atomic", "add_group"]
