"""Normalise-then-hash rules shared by ad exports and the suppression list.

The same contact point must give the same hash wherever it is hashed (ad exports, suppression
of erased people, the ingest quarantine hook), so there is exactly one rule per kind:

* email: trim surrounding whitespace, lower-case, SHA-256, lower-case hex. This is the rule of
  Google Ads / Display & Video 360 Customer Match, Meta Custom Audiences, TikTok customer files
  and X (Twitter) custom audiences. No Gmail dot or `+tag` removal: Meta and TikTok do not do
  it, and Google's Customer Match matches either way.
* phone: E.164 (`+` country code and national number, no spaces or punctuation), SHA-256, hex.
  This is Google Customer Match's rule ("format phone numbers in E.164 with the + and country
  code before hashing") and TikTok's recommended format. Meta hashes digits *without* the `+`,
  so the `phone_sha256` column of an ads export matches Google and TikTok, not Meta.

`sha256("test@example.com")` =
`973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b` (computed by hand with
`printf %s test@example.com | sha256sum`; tests/test_export.py checks it).
"""

from __future__ import annotations

import hashlib
import re

_E164 = re.compile(r"\+[1-9]\d{6,14}")


def sha256_hex(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes of `text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_email_for_hash(email: str | None) -> str | None:
    """Trim and lower-case; None for a missing or blank value."""
    if email is None:
        return None
    value = str(email).strip().lower()
    return value or None


def is_e164(phone: str | None) -> bool:
    """True for `+` followed by 7 to 15 digits, the first not 0."""
    return phone is not None and bool(_E164.fullmatch(str(phone)))


def hash_email(email: str | None) -> str | None:
    """SHA-256 hex of the normalised email (ad platforms' rule), None when missing."""
    value = normalize_email_for_hash(email)
    return None if value is None else sha256_hex(value)


def hash_phone(e164: str | None) -> str | None:
    """SHA-256 hex of an E.164 phone number (with its `+`); None unless it is E.164.

    Normalise first (`ccv.identity.standardize.normalize_phone`): hashing "07911 123456" would
    give a hash no platform and no suppression entry could ever match.
    """
    if e164 is None:
        return None
    value = str(e164).strip()
    return sha256_hex(value) if is_e164(value) else None
