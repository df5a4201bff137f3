"""E-mail addresses: syntax check, lower case, and the match key (+tags, gmail dots, misspelt
provider domains)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import OSA

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

MAILBOX_PROVIDERS = frozenset(
    {
        # Google, Microsoft, Yahoo, Apple, AOL
        "gmail.com", "googlemail.com",
        "hotmail.com", "hotmail.co.uk", "outlook.com", "live.com", "live.co.uk", "msn.com",
        "yahoo.com", "yahoo.co.uk", "ymail.com", "rocketmail.com",
        "icloud.com", "me.com", "mac.com",
        "aol.com", "aim.com",
        # UK internet providers
        "btinternet.com", "btopenworld.com", "sky.com", "virginmedia.com", "virgin.net",
        "blueyonder.co.uk", "ntlworld.com", "talktalk.net", "tiscali.co.uk", "orange.net",
        # US internet providers
        "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "bellsouth.net",
        "charter.net", "cox.net", "earthlink.net", "optonline.net",
        # European and independent providers
        "gmx.com", "gmx.de", "gmx.net", "web.de", "t-online.de", "mail.com", "email.com",
        "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "libero.it",
        "protonmail.com", "protonmail.ch", "proton.me", "pm.me", "fastmail.com",
        "tutanota.com", "yandex.com",
    }
)  # fmt: skip
"""Well-known consumer mailbox domains (UK, US, Europe): the targets of `email_match_key`'s
domain correction; a domain in this set is never corrected. Left out on purpose: two-letter
country variants (hotmail.fr, yahoo.de, live.it), each with unlisted siblings one letter away
(yahoo.dk, yahoo.gr, hotmail.fi) that would be "corrected" to it."""

_PROVIDERS = tuple(sorted(MAILBOX_PROVIDERS))
# short names are never targets: their one-letter neighbours are often real domains
_CORRECTABLE = np.array([len(p.split(".", 1)[0]) >= 5 for p in _PROVIDERS])


def _ocr_fold(domain: str) -> str:
    """Read "rn" as "m", the classic OCR confusion (either way: grnail, btintemet)."""
    return domain.replace("rn", "m")


_FOLDED_PROVIDERS = tuple(_ocr_fold(p) for p in _PROVIDERS)


def _corrected_domains(domains: Sequence[str]) -> list[str]:
    """Each domain, or the provider it misspells (the rule: `email_match_key`).

    `rapidfuzz.process.cdist` over all of them at once (run it on distinct domains). OSA
    (optimal string alignment) is Damerau-Levenshtein restricted to editing each substring
    once; the two agree on every distance up to 1, and OSA is ~6x faster here.
    """
    if not domains:
        return []
    out = list(domains)
    todo = [i for i, d in enumerate(domains) if d not in MAILBOX_PROVIDERS]
    if not todo:
        return out
    raw = [domains[i] for i in todo]
    folded = [_ocr_fold(d) for d in raw]
    scorer = OSA.distance
    distance = np.minimum(
        process.cdist(raw, _PROVIDERS, scorer=scorer, score_cutoff=1, dtype=np.uint8),
        process.cdist(folded, _FOLDED_PROVIDERS, scorer=scorer, score_cutoff=1, dtype=np.uint8),
    )
    best = distance.argmin(axis=1)
    nearest = distance[np.arange(len(todo)), best]
    alone = (distance == nearest[:, None]).sum(axis=1) == 1
    for k in np.flatnonzero((nearest <= 1) & alone & _CORRECTABLE[best]):
        out[todo[k]] = _PROVIDERS[best[k]]
    return out


@lru_cache(maxsize=4096)
def _corrected_domain(domain: str) -> str:
    return _corrected_domains([domain])[0]


def _corrected_domain_array(domain: pa.Array) -> pa.Array:
    """`_corrected_domains` once per distinct value of an Arrow text array (null stays null)."""
    encoded = pc.dictionary_encode(domain)
    fixed = _corrected_domains(encoded.dictionary.to_pylist())
    return pa.array(fixed, type=_TEXT).take(encoded.indices)


def _email_key(email: str) -> str | None:
    local, sep, domain = email.strip().lower().rpartition("@")
    if not sep or not local:
        return None
    base = local.split("+", 1)[0] or local  # "+tag" sub-addressing; keep "+x@" as is
    domain = _corrected_domain(domain)
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
    domain = _corrected_domain_array(domain)
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

    A misspelt consumer provider domain is read as the provider, mailcheck-style: CRM exports
    are full of "gmial.com", "gmai1.com", "grnail.com", "hotmail.co.k", "outlook.corn", and
    without this two records of one person have different keys (blocking and the "same match
    key" level miss them). The rule, once per *distinct* domain:

    * a domain in `MAILBOX_PROVIDERS` is never changed (mail.com stays mail.com, although it is
      one letter from gmail.com);
    * any other domain becomes provider P when it is within Damerau-Levenshtein distance 1 of P
      (one wrong, missing, extra or swapped character), "rn" and "m" counting as the same (the
      OCR confusion: grnail.com, outlook.corn, btintemet.com), AND no other provider is as
      close (gail.com, mgail.com, xmail.com are as near mail.com or ymail.com as gmail.com:
      left alone) AND P's name (before the first dot) has at least 5 characters.

    Why the length floor: short names (me, mac, aol, gmx, msn, sky, live, mail) have real
    domains one letter away (mi.com, max.com, aon.com, gmc.com, hive.co.uk, rail.com), while a
    real domain one slip from "hotmail" or "btinternet" is rare. A wrong correction is costly:
    the key also links orders to CRM records deterministically. Why only one edit: two reach
    real domains (hotmail.de, yahoo.co.jp). Corporate domains are never targets (only consumer
    providers are listed), so "examp1e.com" stays as typed. The e-mail itself
    (`normalize_email`, what users see) keeps the typed domain; only the key reads it.

    >>> email_match_key(pd.Series(["j.o.e+promo@googlemail.com", "ann+x@corp.co.uk"])).tolist()
    ['joe@gmail.com', 'ann@corp.co.uk']
    >>> email_match_key(pd.Series(["ann@gmai1.com", "bo@hotmail.co.k", "cy@aol.co"])).tolist()
    ['ann@gmail.com', 'bo@hotmail.co.uk', 'cy@aol.co']
    """
    codes, uniques = _distinct(email_normalized)
    return _rows(codes, _email_key_values(uniques), email_normalized)
