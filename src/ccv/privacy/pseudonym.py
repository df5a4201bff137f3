"""The secret key behind `customer_360_pseudo.pseudo_id`.

Why a keyed hash: `customer_id` is `C` + 16 hex digits of a hash of a source record key, so an
analyst who knows the CRM's id format could hash candidate ids and re-identify rows of the
pseudonymised view. `pseudo_id = sha256(key || ':' || customer_id)` with a key that analysts do
not hold breaks that link, while staying stable from run to run (same key, same id).

The key comes from a key file (`[activation] pseudonym_key_path`, default
`warehouse/pseudonym.key`) created on first use with a random 256-bit value and mode 0600;
deployments that keep secrets elsewhere write it there before the run. The nightly build must
set it as the DuckDB variable
`pseudonym_key` before building the marts; without it the model falls back to the public
constant `UNKEYED` (documented, and only acceptable on sample data).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ccv.privacy.hashing import sha256_hex

UNKEYED = "ccv-unkeyed"


def pseudonym_key(path: Path | None) -> str:
    """The key from the key file (created if missing)."""
    if path is None:
        return UNKEYED
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def pseudo_id(key: str, customer_id: str) -> str:
    """The pseudonym of `customer_id` under `key` (same formula as the SQL model)."""
    return sha256_hex(f"{key}:{customer_id}")
