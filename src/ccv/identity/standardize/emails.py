"""E-mail addresses: syntax check, lower case, and the provider match key (gmail dots/+tags)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.standardize.kernels import (
    _TEXT,
    _clean,
    _concat,
    _distinct,
    _empty_to_null,
    _halves,
    _matches,
    _null_where,
    _route1,
    _rows,
    _sub,
)
from ccv.identity.standardize.text import (
    PLACEHOLDERS,
    _clean_ascii,
    _placeholder_mask_ascii,
    _placeholder_test,
)

# --------------------------------------------------------------------------------------------
# e-mail

_EMAIL = re.compile(
    r"(?P<local>[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59}))"
)


def _normalize_email_text(text: str, is_placeholder: Callable[[str], bool]) -> str | None:
    cleaned = _clean(text)
    if cleaned is None or is_placeholder(cleaned):
        return None
    email = cleaned.lower()
    if email.startswith("mailto:"):
        email = email[len("mailto:") :]
    if email.startswith("<") and email.endswith(">"):
        email = email[1:-1]
    match = _EMAIL.fullmatch(email)
    if match is None or len(match["local"]) > 64 or len(match["domain"]) > 253:
        return None
    return None if is_placeholder(email) else email


_EMAIL_PARTS = f"^(?:{_EMAIL.pattern})$"


def _email_values(values: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    def kernel(v: pa.Array) -> tuple[pa.Array, None]:
        cleaned = _clean_ascii(v)
        email = _sub(_sub(pc.ascii_lower(cleaned), "^mailto:"), "^<(.*)>$", r"\1")
        at = pc.find_substring(email, "@")  # the pattern allows exactly one
        domain_length = pc.subtract(pc.subtract(pc.utf8_length(email), at), 1)
        valid = pc.and_kleene(
            _matches(email, _EMAIL_PARTS),
            pc.and_kleene(pc.less_equal(at, 64), pc.less_equal(domain_length, 253)),
        )
        blank = pc.or_kleene(
            _placeholder_mask_ascii(cleaned, placeholders),
            _placeholder_mask_ascii(email, placeholders),
        )
        return _null_where(pc.or_kleene(blank, pc.invert(valid)), email), None

    is_placeholder = _placeholder_test(placeholders)
    return _route1(values, kernel, lambda text: _normalize_email_text(text, is_placeholder))


def normalize_email(s: pd.Series, placeholders: Collection[str] | None = PLACEHOLDERS) -> pd.Series:
    """Clean and lower-case an e-mail address; syntactically invalid or placeholder -> NA.

    Why: a malformed address can never identify anyone, and case never distinguishes
    mailboxes in practice. Syntax: one "@", a dot-atom local part of at most 64 characters
    (no leading, trailing or doubled dots), a domain of at least two valid labels (letters,
    digits, inner hyphens) ending in an alphabetic or punycode TLD, no spaces. A ``mailto:``
    prefix or surrounding ``<>`` is removed. Internationalised (non-ASCII) addresses are
    rejected.

    >>> normalize_email(pd.Series([" Ann.Lee@Example.COM ", "a@@b.com", "a@b.com.", "x"])).tolist()
    ['ann.lee@example.com', nan, nan, nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _email_values(uniques, placeholders), s)


_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def _email_key(email: str) -> str | None:
    local, sep, domain = email.strip().lower().rpartition("@")
    if not sep or not local:
        return None
    base = local.split("+", 1)[0] or local  # "+tag" sub-addressing; keep "+x@" as is
    if domain in _GMAIL_DOMAINS:
        domain = "gmail.com"
        base = base.replace(".", "") or base
    return f"{base}@{domain}"


def _email_key_ascii(values: pa.Array) -> tuple[pa.Array, None]:
    """`_email_key` for printable ASCII: the last "@" splits local part and domain."""
    email = pc.ascii_lower(pc.utf8_trim(values, " "))
    local, domain = _halves(email, "@", reverse=True)  # rpartition("@")
    local = _empty_to_null(_null_where(pc.is_null(domain), local))
    base = _sub(local, r"\+.*$")  # "+tag" sub-addressing
    base = pc.if_else(pc.equal(base, ""), local, base)  # keep "+x@" as is
    gmail = pc.is_in(domain, value_set=pa.array(sorted(_GMAIL_DOMAINS), type=_TEXT))
    undotted = pc.replace_substring(base, ".", "")
    base = pc.if_else(pc.and_kleene(gmail, pc.not_equal(undotted, "")), undotted, base)
    domain = pc.if_else(gmail, "gmail.com", domain)
    return _concat(base, "@", domain), None


def _email_key_values(values: pa.Array) -> pa.Array:
    return _route1(values, _email_key_ascii, _email_key, cleans_first=False)


def email_match_key(email_normalized: pd.Series) -> pd.Series:
    """A *matching key* for an already normalised e-mail; never show it to users.

    Why: one mailbox hides behind several spellings. For every provider a ``+tag`` is
    dropped (ann+shop@x.com -> ann@x.com); for Gmail, dots in the local part are ignored and
    googlemail.com is gmail.com. Other providers' dots are significant and kept.

    >>> email_match_key(pd.Series(["j.o.e+promo@googlemail.com", "ann+x@corp.co.uk"])).tolist()
    ['joe@gmail.com', 'ann@corp.co.uk']
    """
    codes, uniques = _distinct(email_normalized)
    return _rows(codes, _email_key_values(uniques), email_normalized)
