"""The whole customer frame: every ``std_*`` comparison column, the fields side by side."""

from __future__ import annotations

from collections.abc import Callable, Collection

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.standardize.dates import parse_date
from ccv.identity.standardize.emails import _email_key_values, _email_values
from ccv.identity.standardize.identifiers import _loyalty_values, _phone_values, _postcode_values
from ccv.identity.standardize.kernels import _distinct
from ccv.identity.standardize.names import _nickname_values, _phonetic_values, _split_values
from ccv.identity.standardize.text import PLACEHOLDERS, _folded_field_values
from ccv.identity.threads import run_together

STD_COLUMNS = (
    "std_first_name",
    "std_last_name",
    "std_first_name_key",
    "std_first_phonetic",
    "std_last_phonetic",
    "std_email",
    "std_email_key",
    "std_phone",
    "std_postcode",
    "std_city",
    "std_loyalty_id",
    "std_birth_date",
)
"""The columns `standardize_customers` adds, in order."""


def standardize_customers(
    df: pd.DataFrame,
    default_region: str = "GB",
    placeholders: Collection[str] | None = PLACEHOLDERS,
) -> pd.DataFrame:
    """Add the ``std_*`` comparison columns to a frame of canonical customer fields.

    Why: identity resolution compares and blocks on these, while the input columns stay as
    they were (the result is a copy). Missing input columns count as all-NA. Added columns:

    * ``std_first_name``, ``std_last_name``: folded; each falls back to `split_full_name` of
      ``full_name`` when missing
    * ``std_first_name_key`` (`nickname_key`), ``std_first_phonetic``, ``std_last_phonetic``
    * ``std_email``, ``std_email_key``, ``std_phone`` (E.164, ``default_region`` for national
      numbers), ``std_postcode``, ``std_city`` (folded), ``std_loyalty_id``
    * ``std_birth_date`` (``date32``; typed dates pass through)

    ``country`` is accepted but not used yet: phones are read in ``default_region``.

    Each input column is dictionary-encoded once and every derived key (nickname, phonetic,
    e-mail key) is computed on its distinct values, never on the rows; the fields are
    standardised in parallel threads.
    """
    na = pd.Series(pd.NA, index=df.index, dtype="object")
    region = default_region.upper()

    def column(name: str) -> pd.Series:
        return df[name] if name in df.columns else na

    def rows(name: str, transform: Callable[[pa.Array], pa.Array]) -> pa.Array:
        codes, values = _distinct(column(name))
        return transform(values).take(codes)

    def names() -> dict[str, pa.Array]:
        full_codes, full_values = _distinct(column("full_name"))
        split = dict(
            zip(
                ("first", "last"),
                _split_values(full_values, placeholders, folded=True),
                strict=True,
            )
        )
        keys = {
            "std_first_name": ("first", None),
            "std_last_name": ("last", None),
            "std_first_name_key": ("first", _nickname_values),
            "std_first_phonetic": ("first", _phonetic_values),
            "std_last_phonetic": ("last", _phonetic_values),
        }
        own = {}
        for part in ("first", "last"):
            codes, values = _distinct(column(f"{part}_name"))
            own[part] = codes, _folded_field_values(values, placeholders)
        result = {}
        for name, (part, key) in keys.items():  # a missing first/last name comes from full_name
            codes, values = own[part]
            use_split = pc.is_null(values.take(codes))
            mine, theirs = (values, split[part]) if key is None else (key(values), key(split[part]))
            result[name] = pc.if_else(use_split, theirs.take(full_codes), mine.take(codes))
        return result

    def emails() -> dict[str, pa.Array]:
        codes, values = _distinct(column("email"))
        email = _email_values(values, placeholders)
        return {
            "std_email": email.take(codes),
            "std_email_key": _email_key_values(email).take(codes),
        }

    jobs: dict[str, Callable[[], dict[str, pa.Array]]] = {
        "phone": lambda: {
            "std_phone": rows("phone", lambda v: _phone_values(v, region, placeholders))
        },
        "names": names,
        "email": emails,
        "postcode": lambda: {
            "std_postcode": rows("postcode", lambda v: _postcode_values(v, placeholders))
        },
        "city": lambda: {"std_city": rows("city", lambda v: _folded_field_values(v, placeholders))},
        "loyalty": lambda: {
            "std_loyalty_id": rows("loyalty_id", lambda v: _loyalty_values(v, placeholders))
        },
        "birth_date": lambda: {"std_birth_date": parse_date(column("birth_date"))},
    }
    # Arrow kernels release the GIL, so the fields run side by side on the machine's cores.
    results = {k: v for result in run_together(*jobs.values()) for k, v in result.items()}
    out = df.copy()
    for name in STD_COLUMNS[:-1]:
        out[name] = pd.Series(pd.array(results[name], dtype="str"), index=df.index)
    out["std_birth_date"] = results["std_birth_date"]
    return out
