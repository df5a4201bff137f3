"""Comparison-ready columns for identity resolution, built from dirty CRM fields.

Why: two records of one customer rarely agree byte for byte ("Bob  O'Brien" vs "ROBERT OBRIEN",
"07911 123456" vs "+44 7911 123456"). Matching compares *standardised* values, while the raw
values are kept untouched for display and audit, so every function here returns a new Series.

Conventions shared by every function:

* Input is a pandas Series of anything (str, numbers, mixed objects); output is aligned with it
  (same index and name). Text outputs have pandas' default ``str`` dtype; a missing value is NA
  (``pd.isna`` is true), never an empty string.
* Work is done once per *distinct* value and mapped back (Arrow dictionary encoding), so a
  million rows with heavy repetition cost roughly as much as their unique values. The
  distinct values are processed by Arrow kernels (RE2, vectorised) when they are printable
  ASCII, and by the per-value Python definition otherwise; both give the same answers.
* Values meaning "missing" ("n/a", "unknown", "test@test.com", "0000000000", ...) are blanked by
  `blank_placeholders`; the normalisers take a ``placeholders`` argument (``None`` disables it).

Keys such as `email_match_key`, `nickname_key` and `phonetic_key` are *matching keys*: lossy on
purpose, for blocking and comparison only, never shown to users.

The package, by field: `kernels` (the per-distinct-value plumbing: Arrow kernels with an exact
Python fallback), `text` (clean-up, folding, placeholders), `names`, `emails`, `identifiers`
(phones, postcodes, loyalty ids), `dates`, and `customers` (every ``std_*`` column of a frame).
"""

from __future__ import annotations

from ccv.identity.standardize.customers import STD_COLUMNS, standardize_customers
from ccv.identity.standardize.dates import DATE_DTYPE, parse_date
from ccv.identity.standardize.emails import email_match_key, normalize_email
from ccv.identity.standardize.identifiers import (
    normalize_loyalty_id,
    normalize_phone,
    normalize_postcode,
)
from ccv.identity.standardize.names import nickname_key, phonetic_key, split_full_name
from ccv.identity.standardize.text import PLACEHOLDERS, blank_placeholders, clean_text, fold

__all__ = [
    "DATE_DTYPE",
    "PLACEHOLDERS",
    "STD_COLUMNS",
    "blank_placeholders",
    "clean_text",
    "email_match_key",
    "fold",
    "nickname_key",
    "normalize_email",
    "normalize_loyalty_id",
    "normalize_phone",
    "normalize_postcode",
    "parse_date",
    "phonetic_key",
    "split_full_name",
    "standardize_customers",
]
