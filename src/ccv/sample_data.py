"""Deterministic, realistic sample data for a UK mid-size retailer.

Why this exists: every stage of ccv (ingest, validation, identity resolution,
warehouse, segmentation) needs input that looks like what a real retailer would
hand over - two CRMs that disagree with each other, web and till transactions,
survey answers - *and* a ground truth that says which rows belong to the same
human and which rows were deliberately broken.  With that, tests and benchmarks
can measure the pipeline instead of eyeballing it.

Design choices, and why:

* Only ``random.Random`` seeded from ``(seed, stage name)`` is used, never the
  clock, hash order or set iteration, so the same seed always yields
  byte-identical files and a change in one stage does not reshuffle the others.
* The reference date is fixed (orders and surveys end on 2026-10-31, spanning
  three years back) so outputs do not drift with today's date.
* Work is linear in ``persons``: rows are built in lists and written once with
  the csv/json modules, so ``persons=100_000`` stays fast enough for benchmarks.
* Dirt is realistic rather than random noise: nicknames, dropped accents,
  swapped names, one-character typos, alternative phone layouts, gmail dot and
  plus-tag variants, shared household e-mails, namesakes, second accounts, an
  e-mail's "@" typed as " at " (valid once ingest repairs it).
* A handful of plainly invalid rows are planted and labelled in
  ``ground_truth.csv``; every other row is valid by the obvious rules, so a
  validator can be scored exactly.
"""

from __future__ import annotations

import bisect
import csv
import gc
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from pathlib import Path
from typing import TextIO

from anyascii import anyascii

# --------------------------------------------------------------------------- constants

END = date(2026, 10, 31)
START = date(2023, 11, 1)
END_ORD = END.toordinal()
START_ORD = START.toordinal()
N_DAYS = END_ORD - START_ORD + 1

STORES = [f"S{i:02d}" for i in range(1, 9)]

ESHOP_FILE = "crm_eshop_accounts.csv"
LOYALTY_FILE = "crm_store_loyalty.csv"
WEB_FILE = "web_orders.jsonl"
STORE_FILE = "store_orders.csv"
SURVEY_FILE = "survey_responses.csv"
TRUTH_FILE = "ground_truth.csv"

ESHOP_HEADER = [
    "Account ID", "First Name", "Last Name", "Email Address", "Phone", "Date of Birth",
    "Gender", "Street", "City", "Postcode", "Country", "Created At", "Updated At",
    "Newsletter Opt-in", "SMS Opt-in", "Referral Code",
]  # fmt: skip
LOYALTY_HEADER = [
    "Card Number", "Full Name", "E-mail", "Tel", "DOB", "Postcode", "Town", "Joined",
    "Marketing Consent", "Home Store",
]  # fmt: skip
STORE_HEADER = [
    "receipt_no", "store_id", "card_number", "sold_at", "type", "gross", "discount", "net",
    "currency",
]  # fmt: skip
SURVEY_HEADER = ["response_id", "email", "crm_id", "submitted_at", "nps", "csat", "comment"]
TRUTH_HEADER = ["source", "source_record_id", "person_id", "planted_error"]

ERROR_CODES = (
    "negative_amount", "impossible_date", "malformed_email", "nps_out_of_range",
    "non_numeric_amount", "missing_id", "duplicate_id",
)  # fmt: skip

# Names: (name, weight).  Heavy weights on a few very common names make
# namesakes (two different "James Smith") appear naturally.
FEMALE = [
    ("Olivia", 30), ("Amelia", 22), ("Emily", 20), ("Sarah", 22), ("Emma", 18),
    ("Sophie", 18), ("Charlotte", 16), ("Jessica", 14), ("Elizabeth", 14), ("Katherine", 12),
    ("Margaret", 8), ("Rebecca", 10), ("Jennifer", 8), ("Victoria", 8), ("Susan", 8),
    ("Patricia", 5), ("Mary", 10), ("Hannah", 12), ("Lucy", 14), ("Isla", 10), ("Ava", 12),
    ("Zoë", 6), ("Chloé", 5), ("Siobhán", 5), ("Renée", 4), ("Niamh", 5), ("Aoife", 4),
    ("Élodie", 3), ("Inés", 3), ("Anaïs", 2), ("Małgorzata", 2), ("Agnieszka", 3),
    ("Priya", 6), ("Aisha", 6), ("Fatima", 5), ("Abigail", 6),
]  # fmt: skip
MALE = [
    ("James", 30), ("Oliver", 24), ("Jack", 20), ("Harry", 16), ("George", 14),
    ("Thomas", 20), ("William", 18), ("Robert", 16), ("Richard", 10), ("Michael", 16),
    ("David", 18), ("Daniel", 14), ("Christopher", 12), ("Matthew", 12), ("Joseph", 10),
    ("Samuel", 10), ("Benjamin", 10), ("Edward", 8), ("Anthony", 6), ("Andrew", 10),
    ("Alexander", 8), ("Nicholas", 6), ("José", 5), ("François", 4), ("Łukasz", 4),
    ("Seán", 4), ("Ciarán", 3), ("Søren", 2), ("Jürgen", 2), ("Joël", 2), ("Mohammed", 8),
    ("Raj", 4), ("Piotr", 4),
]  # fmt: skip
LAST = [
    ("Smith", 30), ("Jones", 22), ("Williams", 18), ("Taylor", 16), ("Brown", 16),
    ("Davies", 14), ("Evans", 12), ("Wilson", 12), ("Thomas", 10), ("Johnson", 10),
    ("Roberts", 10), ("Robinson", 8), ("Thompson", 8), ("Wright", 8), ("Walker", 8),
    ("White", 7), ("Edwards", 7), ("Hughes", 7), ("Green", 7), ("Hall", 7), ("Wood", 6),
    ("Harris", 6), ("Lewis", 6), ("Martin", 6), ("Jackson", 6), ("Clarke", 6), ("Patel", 8),
    ("Khan", 6), ("Ahmed", 4), ("Singh", 5), ("Chen", 3), ("Nguyen", 2), ("O'Brien", 4),
    ("O'Connor", 4), ("Murphy", 5), ("Kelly", 5), ("McDonald", 4), ("MacLeod", 3),
    ("Campbell", 4), ("Stewart", 4), ("Scott", 4), ("Anderson", 4), ("Morgan", 4),
    ("Cooper", 4), ("Ward", 3), ("Bennett", 3), ("Gray", 3), ("Price", 3),
    ("Fitzgerald", 3), ("Nowak", 3), ("Kowalski", 2), ("Wójcik", 2), ("García", 3),
    ("Fernández", 2), ("Núñez", 1), ("Müller", 2), ("Dubois", 2), ("Lefèvre", 2),
    ("Brontë", 1), ("Smith-Jones", 1), ("Ní Bhriain", 1),
]  # fmt: skip

# Only pairs that the `nicknames` package also knows, so a resolver using it can win.
NICKNAMES = {
    "Robert": ["Bob", "Rob", "Bobby"], "William": ["Bill", "Will", "Billy"],
    "Elizabeth": ["Liz", "Beth", "Lizzie"], "Katherine": ["Kate", "Kathy"],
    "James": ["Jim", "Jimmy", "Jamie"], "Thomas": ["Tom", "Tommy"], "Michael": ["Mike", "Mick"],
    "David": ["Dave"], "Daniel": ["Dan", "Danny"], "Christopher": ["Chris"],
    "Matthew": ["Matt"], "Joseph": ["Joe"], "Samuel": ["Sam"], "Benjamin": ["Ben"],
    "Edward": ["Ed", "Ted", "Eddie"], "Anthony": ["Tony"], "Andrew": ["Andy", "Drew"],
    "Richard": ["Rick", "Richie"], "Margaret": ["Maggie", "Peggy"],
    "Rebecca": ["Becky", "Becca"], "Jennifer": ["Jenny", "Jen"], "Victoria": ["Vicky", "Tori"],
    "Patricia": ["Pat", "Trish"], "Susan": ["Sue", "Susie"], "Jessica": ["Jess"],
    "Charlotte": ["Lottie"], "Oliver": ["Ollie"], "Alexander": ["Alex"],
    "Nicholas": ["Nick"], "Abigail": ["Abby"],
}  # fmt: skip

# (town, postcode areas, district range, nearest store, weight)
TOWNS = [
    ("London", ("E", "N", "SE", "SW", "W", "NW"), 20, "S01", 22),
    ("Croydon", ("CR",), 9, "S01", 3), ("Watford", ("WD",), 25, "S01", 2),
    ("Manchester", ("M",), 40, "S02", 9), ("Stockport", ("SK",), 17, "S02", 3),
    ("Salford", ("M",), 7, "S02", 2), ("Birmingham", ("B",), 48, "S03", 9),
    ("Solihull", ("B",), 94, "S03", 2), ("Coventry", ("CV",), 8, "S03", 2),
    ("Leeds", ("LS",), 29, "S04", 7), ("Harrogate", ("HG",), 5, "S04", 2),
    ("York", ("YO",), 32, "S04", 2), ("Bristol", ("BS",), 49, "S05", 7),
    ("Bath", ("BA",), 3, "S05", 2), ("Cardiff", ("CF",), 24, "S05", 3),
    ("Glasgow", ("G",), 80, "S06", 7), ("Paisley", ("PA",), 3, "S06", 1),
    ("Edinburgh", ("EH",), 17, "S06", 4), ("Newcastle upon Tyne", ("NE",), 16, "S07", 5),
    ("Sunderland", ("SR",), 6, "S07", 2), ("Durham", ("DH",), 7, "S07", 1),
    ("Nottingham", ("NG",), 22, "S08", 6), ("Derby", ("DE",), 24, "S08", 2),
    ("Leicester", ("LE",), 9, "S08", 2), ("Brighton", ("BN",), 3, "S01", 3),
    ("Oxford", ("OX",), 4, "S01", 2), ("Norwich", ("NR",), 7, "S08", 2),
]  # fmt: skip
IE_TOWNS = [("Dublin", "D", 24), ("Cork", "T", 23), ("Galway", "H", 91)]
STREETS = [
    "High", "Church", "Station", "Victoria", "Park", "Mill", "Queen's", "King's", "London",
    "Manor", "Green", "Chapel", "Albert", "York", "Grange", "Orchard", "Windsor", "Elm",
    "Oak", "Beech", "Meadow", "Kingsway", "Castle", "Bridge", "Rectory", "Springfield",
    "Highfield", "Westfield", "Ash", "Cedar", "Willow", "Stanley", "Jubilee", "Nelson",
]  # fmt: skip
STREET_TYPES = [
    ("Road", "Rd"), ("Street", "St"), ("Lane", "Ln"), ("Avenue", "Ave"), ("Close", "Cl"),
    ("Drive", "Dr"), ("Gardens", "Gdns"), ("Way", "Way"), ("Crescent", "Cres"),
    ("Terrace", "Ter"),
]  # fmt: skip
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
EIRCODE_CHARS = "ACDEFHKNPRTVWXY0123456789"

DOMAINS = [
    ("gmail.com", 30), ("outlook.com", 14), ("btinternet.com", 10), ("mail.co.uk", 16),
    ("example.com", 22), ("example.org", 8),
]  # fmt: skip

# category -> (sku prefix, min pounds, max pounds)
CATEGORIES = {
    "Womenswear": ("WW", 12, 89), "Menswear": ("MW", 15, 89), "Shoes": ("SH", 25, 120),
    "Accessories": ("AC", 5, 45), "Home": ("HM", 4, 60), "Beauty": ("BT", 3, 35),
}  # fmt: skip
CATEGORY_NAMES = list(CATEGORIES)
CATEGORY_WEIGHTS = list(accumulate([24, 16, 14, 18, 14, 14]))

# segment -> (weight, probability of buying, share of orders placed on the web)
SEGMENTS = {
    "both": (28, 0.7, 0.3),  # e-shop account and loyalty card
    "eshop": (40, 0.4, 0.75),  # account only; store visits are anonymous
    "loyalty": (22, 0.55, 0.06),  # card only; web orders are guest checkouts
    "guest": (6, 1.0, 1.0),  # never registered anywhere, buys as web guest
    "anon": (4, 1.0, 0.0),  # only ever anonymous at the till
}
SEGMENT_NAMES = list(SEGMENTS)
SEGMENT_CUM = list(accumulate(w for w, _, _ in SEGMENTS.values()))

COMMENTS = [
    "Great service, will shop again.",
    "Delivery was late.",
    "Lovely staff in store",
    "Sizes run small, had to return the jeans",
    'The "next day" delivery took four days.',
    "Good value, but the website is slow.",
    "Couldn't find my size in store, so ordered online.",
    "Very happy!",
    "Returns process was painless",
    'Item described as "navy" was clearly black, disappointed.',
    "Checkout kept logging me out",
    "Staff at the till were rude, and the queue was long.",
    "Love the new homeware range",
    "Parcel arrived damaged.\nReplacement was quick though.",
    "Fine",
    "Loyalty points never showed up on my card",
    "Prices have gone up a lot, not great.",
    "Brilliant - quick, easy, well packed.",
    "Great quality.\n\nWill recommend to friends.",
    "Click & collect was ready in an hour, impressive.",
]


# --------------------------------------------------------------------------- helpers


def _rng(seed: int, stage: str) -> random.Random:
    """One independent stream per stage: editing one stage must not reshuffle the rest.

    String seeds are hashed with SHA-512 by ``random``, so this is immune to
    PYTHONHASHSEED.
    """
    return random.Random(f"ccv-sample:{seed}:{stage}")


class Weighted:
    """A weighted pool with precomputed cumulative weights (``rng.choices`` rebuilds
    them on every call, which dominated the run time at 100k persons)."""

    __slots__ = ("cum", "total", "values")

    def __init__(self, pairs: Sequence[tuple[object, float]]) -> None:
        self.values = [v for v, _ in pairs]
        self.cum = list(accumulate(w for _, w in pairs))
        self.total = self.cum[-1]

    def draw(self, rng: random.Random):
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.total)]


FEMALE_POOL, MALE_POOL, LAST_POOL = Weighted(FEMALE), Weighted(MALE), Weighted(LAST)
DOMAIN_POOL = Weighted(DOMAINS)
TOWN_POOL = Weighted([(t, t[4]) for t in TOWNS])
GENDER_POOL = Weighted([("F", 52), ("M", 46), ("X", 2)])
WEB_STATUS_POOL = Weighted([("completed", 90), ("cancelled", 6), ("refunded", 4)])
TILL_TYPE_POOL = Weighted([("SALE", 93), ("RETURN", 5), ("VOID", 2)])
NPS_POOL = Weighted(list(zip(range(11), [3, 2, 2, 3, 3, 6, 7, 12, 22, 20, 20], strict=True)))
BASKET_SIZE = {
    n: Weighted(list(zip(range(1, n + 1), [70, 22, 8, 4][:n], strict=True))) for n in (2, 3, 4)
}


def _iso_date(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def _dmy(ordinal: int) -> str:
    d = date.fromordinal(ordinal)
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _money(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}" if pence >= 0 else "-" + _money(-pence)


def _slug(text: str) -> str:
    """ASCII letters/digits only: what people actually type into an e-mail local part."""
    return "".join(c for c in anyascii(text).lower() if c.isalnum())


def _season_cum() -> list[float]:
    """Cumulative day weights START..END: Black Friday/Christmas peak, January sale,
    busier weekends, and ~15 % yearly growth - so RFM and trend charts look real."""
    month = {1: 1.2, 2: 0.8, 3: 0.9, 4: 0.95, 5: 1.0, 6: 1.05, 7: 1.1, 8: 1.0, 9: 0.9,
             10: 1.0, 11: 1.45, 12: 1.8}  # fmt: skip
    weekday = [0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 1.0]
    weights = []
    for i in range(N_DAYS):
        d = date.fromordinal(START_ORD + i)
        w = month[d.month] * weekday[d.weekday()] * (1 + 0.15 * i / 365)
        if d.month == 12 and d.day > 24:
            w *= 0.3 if d.day < 27 else 1.0
        weights.append(w)
    return list(accumulate(weights))


SEASON_CUM = _season_cum()
WEB_HOUR_CUM = list(
    accumulate([1, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 8, 7, 6, 6, 6, 7, 9, 11, 12, 11, 7, 3])
)


def _pick_day(rng: random.Random, lo: int, hi: int) -> int:
    """A seasonal day index in [lo, hi] (0 = START)."""
    base = SEASON_CUM[lo - 1] if lo > 0 else 0.0
    x = base + rng.random() * (SEASON_CUM[hi] - base)
    return min(bisect.bisect_left(SEASON_CUM, x, lo, hi + 1), hi)


# --------------------------------------------------------------------------- persons


@dataclass(slots=True)
class Person:
    """A true human.  CRM rows and transactions are noisy *views* of one of these."""

    pid: str
    first: str
    last: str
    gender: str
    dob: int  # ordinal
    email: str
    phone: str  # national digits, e.g. 07700900123
    street: str  # "12 High Street"
    street_abbr: str  # "12 High St"
    town: str
    postcode: str
    country: str
    home_store: str
    segment: str
    since: int  # ordinal: first contact with the retailer
    active: tuple[int, int]  # day indexes (0 = START) in which the person buys
    n_orders: int
    accounts: list[tuple[str, int, str]] = field(default_factory=list)  # id, created, email
    cards: list[tuple[str, int]] = field(default_factory=list)  # card, joined ordinal
    buys: list[int] = field(default_factory=list)  # day indexes of purchases


# 07xyy blocks that are allocated UK mobile ranges.  Ofcom's "drama" numbers
# (07700 900xxx) look nice but fail phonenumbers.is_valid_number, as does 076 (pagers).
MOBILE_BLOCKS = [b for b in range(400, 1000) if b // 100 in (4, 5, 7, 8, 9) and b not in (700, 911)]


def _phone(rng: random.Random) -> str:
    return f"07{rng.choice(MOBILE_BLOCKS)}{rng.randrange(1_000_000):06d}"


def _mailbox(email: str) -> str:
    """The mailbox an address reaches: case-insensitive, and at gmail.com without dots or a
    +tag ("emma.smith20@" and "emmasmith20+shop@" are one inbox, so one owner)."""
    local, domain = email.lower().split("@")
    if domain == "gmail.com":
        local = local.split("+")[0].replace(".", "")
    return f"{local}@{domain}"


def _email(rng: random.Random, first: str, last: str, dob: int, used: set[str]) -> str:
    f, last_ = _slug(first), _slug(last)
    pattern = rng.randrange(6)
    local = [
        f"{f}.{last_}",
        f"{f}{last_}",
        f"{f[0]}.{last_}",
        f"{f}_{last_}",
        f"{f}.{last_}{rng.randrange(1, 100)}",
        f"{f}{last_[0]}{date.fromordinal(dob).year % 100:02d}",
    ][pattern]
    domain = DOMAIN_POOL.draw(rng)
    email = f"{local}@{domain}"
    n = 1
    while _mailbox(email) in used:  # rare; keeps every person's own mailbox unique
        n += 1
        email = f"{local}{n}@{domain}"
    used.add(_mailbox(email))
    return email


def _address(rng: random.Random, ireland: bool) -> tuple[str, str, str, str, str, str]:
    """Return (street, street_abbr, town, postcode, country, home store)."""
    name = rng.choice(STREETS)
    full, abbr = rng.choice(STREET_TYPES)
    number = rng.randrange(1, 220)
    flat = f"Flat {rng.randrange(1, 30)}, " if rng.random() < 0.08 else ""
    street, street_abbr = f"{flat}{number} {name} {full}", f"{flat}{number} {name} {abbr}"
    if ireland:
        town, letter, district = rng.choice(IE_TOWNS)
        tail = "".join(rng.choice(EIRCODE_CHARS) for _ in range(4))
        return street, street_abbr, town, f"{letter}{district:02d} {tail}", "IE", "S01"
    town, areas, max_district, store, _ = TOWN_POOL.draw(rng)
    outward = f"{rng.choice(areas)}{rng.randrange(1, max_district + 1)}"
    inward = f"{rng.randrange(10)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
    if rng.random() < 0.15:  # people don't always shop at the nearest store
        store = rng.choice(STORES)
    return street, street_abbr, town, f"{outward} {inward}", "GB", store


def _order_count(rng: random.Random) -> int:
    """Skewed: a third buy once, most a handful of times, a few are heavy buyers."""
    if rng.random() < 0.3:
        return 1
    return min(150, max(2, round(rng.lognormvariate(2.3, 0.9))))


def make_person(
    rng: random.Random, i: int, used: set[str], prev: Person | None, namesake: Person | None
) -> Person:
    """Draw one true human.

    ~2.5 % join the previous person's household (same address, often the same
    surname, sometimes one shared family e-mail address), and ``namesake`` - when
    given - lends its exact name to this different person, so that neither name
    nor e-mail alone can identify somebody.
    """
    household = prev is not None and prev.country == "GB" and rng.random() < 0.025
    gender = GENDER_POOL.draw(rng)
    pool = FEMALE_POOL if gender == "F" or (gender == "X" and rng.random() < 0.5) else MALE_POOL
    first = pool.draw(rng)
    last = prev.last if household and rng.random() < 0.7 else LAST_POOL.draw(rng)
    if namesake is not None and not household:
        first, last, gender = namesake.first, namesake.last, namesake.gender
    age_days = int(365.25 * min(85.0, max(18.2, rng.gauss(41, 14))))
    dob = END_ORD - age_days - rng.randrange(365)
    ireland = not household and rng.random() < 0.015
    if household:
        assert prev is not None
        addr = (prev.street, prev.street_abbr, prev.town, prev.postcode, prev.country,
                prev.home_store)  # fmt: skip
    else:
        addr = _address(rng, ireland)
    shared = household and rng.random() < 0.6  # two different people, one family mailbox
    email = prev.email if shared and prev else _email(rng, first, last, dob, used)
    segment = "eshop" if ireland else SEGMENT_NAMES[
        bisect.bisect_right(SEGMENT_CUM, rng.random() * SEGMENT_CUM[-1])
    ]  # fmt: skip
    since = END_ORD - int(rng.triangular(20, 365 * 9, 365 * 2))
    since = max(since, dob + 16 * 365 + rng.randrange(365))  # nobody signs up aged 11
    lo = max(0, since - START_ORD)
    hi = N_DAYS - 1 if rng.random() < 0.75 else rng.randrange(lo, N_DAYS)  # some churn
    n = _order_count(rng) if rng.random() < SEGMENTS[segment][1] else 0
    if segment == "guest":  # repeat buyers register; pure guests buy once or twice
        n = min(n, rng.choice((1, 1, 1, 2, 3)))
    if n:  # people who arrive late or churn early have fewer orders
        n = max(1, round(n * (0.3 + 0.7 * (hi - lo + 1) / N_DAYS)))
    return Person(
        pid=f"P{i:05d}",
        first=first,
        last=last,
        gender=gender,
        dob=dob,
        email=email,
        phone=_phone(rng),
        street=addr[0],
        street_abbr=addr[1],
        town=addr[2],
        postcode=addr[3],
        country=addr[4],
        home_store=addr[5],
        segment=segment,
        since=since,
        active=(lo, hi),
        n_orders=n,
    )


def make_people(seed: int, persons: int) -> list[Person]:
    rng = _rng(seed, "people")
    used: set[str] = set()
    people: list[Person] = []
    for i in range(1, persons + 1):
        namesake = rng.choice(people) if people and rng.random() < 0.012 else None
        people.append(make_person(rng, i, used, people[-1] if people else None, namesake))
    return people


# --------------------------------------------------------------------------- noise


KEYBOARD_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj",
    "i": "uo", "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o",
    "q": "w", "r": "et", "s": "ad", "t": "ry", "u": "yi", "v": "cb", "w": "qe", "x": "zc",
    "y": "tu", "z": "x",
}  # fmt: skip


def typo(rng: random.Random, text: str) -> str:
    """One-character slip: neighbour key, dropped, doubled or transposed letter."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(4)
    c = text[i]
    if kind == 0 and c.lower() in KEYBOARD_NEIGHBOURS:
        r = rng.choice(KEYBOARD_NEIGHBOURS[c.lower()])
        return text[:i] + (r.upper() if c.isupper() else r) + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + c + text[i:]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def vary_name(rng: random.Random, first: str, last: str, noise: float) -> tuple[str, str]:
    """The same human typed by a different clerk/customer/system."""
    if not first.isascii() and rng.random() < 0.45:
        first = anyascii(first)  # "Jose" for "José"
    if not last.isascii() and rng.random() < 0.45:
        last = anyascii(last)
    if first in NICKNAMES and rng.random() < 0.5 * noise:
        first = rng.choice(NICKNAMES[first])
    if rng.random() < 0.1 * noise:
        if rng.random() < 0.5:
            first = typo(rng, first)
        else:
            last = typo(rng, last)
    r = rng.random()
    if r < 0.06 * noise:
        first, last = first.upper(), last.upper()
    elif r < 0.1 * noise:
        first, last = first.lower(), last.lower()
    if rng.random() < 0.06 * noise:
        first = f" {first}" if rng.random() < 0.5 else f"{first}  "
    if rng.random() < 0.03 * noise:
        first, last = last, first
    return first, last


PHONE_STYLES = (
    lambda n: f"+44 {n[1:5]} {n[5:]}",  # +44 7700 900123
    lambda n: n,  # 07700900123
    lambda n: f"{n[:5]} {n[5:8]} {n[8:]}",  # 07700 900 123
    lambda n: f"({n[:5]}) {n[5:8]}-{n[8:]}",  # (07700) 900-123
    lambda n: f"0044 {n[1:5]} {n[5:]}",  # 0044 7700 900123
    lambda n: f"44{n[1:]}",  # 447700900123
    lambda n: f"{n[:5]} {n[5:]}",  # 07700 900123
)


def fmt_phone(rng: random.Random, national: str, styles: Weighted) -> str:
    return styles.draw(rng)(national)


# The e-shop normalises a little (mostly +44 / 07...), the tills keep what was typed.
ESHOP_PHONE_W = Weighted(list(zip(PHONE_STYLES, (30, 25, 8, 4, 6, 10, 17), strict=True)))
LOYALTY_PHONE_W = Weighted(list(zip(PHONE_STYLES, (4, 30, 25, 12, 2, 2, 25), strict=True)))


def vary_email(rng: random.Random, email: str, noise: float) -> str:
    """Same mailbox, different spelling: case, gmail dots and +tags."""
    local, domain = email.split("@")
    if domain == "gmail.com" and rng.random() < 0.3 * noise:
        if "." in local and rng.random() < 0.6:
            local = local.replace(".", "")
        else:
            local += rng.choice(["+shop", "+offers", "+retail"])
    r = rng.random()
    if r < 0.1 * noise:
        return f"{local}@{domain}".upper()
    if r < 0.25 * noise:
        return f"{local.title()}@{domain}"
    return f"{local}@{domain}"


def alt_email(rng: random.Random, p: Person) -> str:
    """A second, genuinely different address of the same person (old provider, typo)."""
    local, domain = p.email.split("@")
    if rng.random() < 0.35:
        local = typo(rng, local).strip(".") or local
        while ".." in local:
            local = local.replace("..", ".")
    else:
        domain = rng.choice([d for d, _ in DOMAINS if d != domain])
        if rng.random() < 0.5:
            local = f"{_slug(p.first)}{_slug(p.last)}{rng.randrange(10, 99)}"
    return f"{local}@{domain}"


def vary_postcode(rng: random.Random, pc: str) -> str:
    r = rng.random()
    if r < 0.06:
        return pc.replace(" ", "")
    if r < 0.1:
        return pc.lower()
    return pc


# --------------------------------------------------------------------------- CRM rows

Row = list[str]  # one CSV row; web orders are dicts instead


@dataclass(slots=True)
class Table:
    """Rows of one output file, with the ground truth that travels alongside."""

    source: str
    id_field: int | str
    rows: list = field(default_factory=list)
    pids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, row: Row | dict, pid: str, error: str = "") -> None:
        self.rows.append(row)
        self.pids.append(pid)
        self.errors.append(error)

    def insert_after(self, extras: list[tuple[int, Row, str, str]]) -> None:
        """Add (anchor index, row, pid, error) rows right after row ``anchor`` in one
        O(n) pass (``list.insert`` in a loop would be quadratic at 100k persons)."""
        by_anchor: dict[int, list[tuple[int, Row, str, str]]] = {}
        for extra in extras:
            by_anchor.setdefault(extra[0], []).append(extra)
        rows, pids, errors = [], [], []
        for i in range(len(self.rows)):
            rows.append(self.rows[i])
            pids.append(self.pids[i])
            errors.append(self.errors[i])
            for _, row, pid, error in by_anchor.get(i, ()):
                rows.append(row)
                pids.append(pid)
                errors.append(error)
        self.rows, self.pids, self.errors = rows, pids, errors

    def record_id(self, i: int) -> str:
        return self.rows[i][self.id_field] or ""


def _stamp(rng: random.Random, ordinal: int) -> str:
    return f"{_iso_date(ordinal)}T{_hms(rng.randrange(7 * 3600, 23 * 3600))}"


def eshop_record(rng: random.Random, p: Person, email: str, created: int, noise: float) -> Row:
    """One CRM row for person ``p``.  ``Account ID`` is filled in later (by creation order)."""
    first, last = vary_name(rng, p.first, p.last, noise)
    phone = "" if rng.random() < 0.1 else fmt_phone(rng, p.phone, ESHOP_PHONE_W)
    dob = "" if rng.random() < 0.15 else _iso_date(p.dob)
    gender = "" if rng.random() < 0.12 else p.gender
    street = p.street_abbr if rng.random() < 0.3 else p.street
    updated = created + int(rng.random() ** 2 * (END_ORD - created))
    newsletter = rng.random() < 0.55
    sms = bool(phone) and rng.random() < 0.3
    referral = ""
    if rng.random() < 0.08:
        referral = "REF-" + "".join(rng.choice("ABCDEFGHJKMNPQRSTUVWXYZ23456789") for _ in range(5))
    return [
        "", first, last, email, phone, dob, gender, street, p.town,
        vary_postcode(rng, p.postcode), p.country, _stamp(rng, created), _stamp(rng, updated),
        "true" if newsletter else "false", "true" if sms else "false", referral,
    ]  # fmt: skip


def eshop_rows(seed: int, people: list[Person]) -> Table:
    """The e-shop CRM: one account per registered person, ~4 % with a second account
    (new e-mail after forgetting the password, sometimes an old phone or a typo).
    IDs are issued in creation order, as a real CRM would."""
    rng = _rng(seed, "eshop")
    drafts: list[tuple[int, int, Row, Person]] = []
    for p in people:
        if p.segment not in ("eshop", "both"):
            continue
        created = p.since - rng.randrange(0, 30)  # usually at the first checkout
        email = vary_email(rng, p.email, 0.3)
        drafts.append((created, len(drafts), eshop_record(rng, p, email, created, 0.6), p))
        if rng.random() < 0.04:
            created2 = min(END_ORD - 1, created + rng.randrange(30, 900))
            row = eshop_record(rng, p, alt_email(rng, p), created2, 1.5)
            if rng.random() < 0.5:
                row[4] = fmt_phone(rng, _phone(rng), ESHOP_PHONE_W)  # an old number
            drafts.append((created2, len(drafts), row, p))
    drafts.sort(key=lambda d: (d[0], d[1]))
    table = Table("eshop_accounts", 0)
    for n, (created, _, row, p) in enumerate(drafts, start=1):
        row[0] = f"ES-{n:06d}"
        p.accounts.append((row[0], created, row[3]))
        table.add(row, p.pid)
    return table


def loyalty_name(rng: random.Random, p: Person, noise: float) -> str:
    """Till systems store one free-text name: 'First Last', 'LAST, First', 'Mrs J Smith'."""
    first, last = vary_name(rng, p.first, p.last, noise)
    r = rng.random()
    if r < 0.55:
        return f"{first} {last}"
    if r < 0.75:
        return f"{last.upper()}, {first}"
    if p.gender == "F":
        title = rng.choice(["Mrs", "Ms", "Miss", "Dr"])
    elif p.gender == "M":
        title = rng.choice(["Mr", "Mr", "Mr", "Dr"])
    else:
        return f"{first} {last}"
    if r < 0.93:
        return f"{title} {first} {last}"
    return f"{title} {first.strip()[:1]} {last}"


def loyalty_record(rng: random.Random, p: Person, joined: int, noise: float) -> Row:
    email = "" if rng.random() < 0.35 else vary_email(rng, p.email, noise)
    tel = "" if rng.random() < 0.08 else fmt_phone(rng, p.phone, LOYALTY_PHONE_W)
    dob = "" if rng.random() < 0.07 else _dmy(p.dob)
    town = p.town.upper() if rng.random() < 0.2 else p.town
    consent = "Y" if rng.random() < 0.45 else "N"
    return ["", loyalty_name(rng, p, noise), email, tel, dob, vary_postcode(rng, p.postcode),
            town, _dmy(joined), consent, p.home_store]  # fmt: skip


def _ean13(digits12: str) -> str:
    """Loyalty cards are EAN-13 barcodes in the in-store '2x' range: add the check digit."""
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(digits12))
    return digits12 + str((10 - total % 10) % 10)


def loyalty_rows(seed: int, people: list[Person]) -> Table:
    """The store loyalty programme: one card per member, ~5 % with a replacement card
    registered as a fresh member (lost card), often with less care."""
    rng = _rng(seed, "loyalty")
    drafts: list[tuple[int, int, Row, Person]] = []
    for p in people:
        if p.segment not in ("loyalty", "both"):
            continue
        joined = min(END_ORD, p.since + rng.randrange(-60, 60))
        drafts.append((joined, len(drafts), loyalty_record(rng, p, joined, 0.8), p))
        if rng.random() < 0.05:
            joined2 = min(END_ORD, joined + rng.randrange(60, 1200))
            row = loyalty_record(rng, p, joined2, 1.6)
            if rng.random() < 0.4 and row[3]:
                row[3] = fmt_phone(rng, _phone(rng), LOYALTY_PHONE_W)
            drafts.append((joined2, len(drafts), row, p))
    drafts.sort(key=lambda d: (d[0], d[1]))
    table = Table("store_loyalty", 0)
    serial = 1_000_000
    for joined, _, row, p in drafts:
        serial += rng.randrange(1, 40)
        row[0] = _ean13(f"29{serial:010d}")
        p.cards.append((row[0], joined))
        table.add(row, p.pid)
    return table


# --------------------------------------------------------------------------- orders


def _basket(rng: random.Random, max_items: int) -> list[tuple[str, str, int, int]]:
    """[(sku, category, qty, unit pence)] - small baskets keep the sample small."""
    n = BASKET_SIZE[max_items].draw(rng)
    items = []
    for _ in range(n):
        cat = CATEGORY_NAMES[bisect.bisect_right(CATEGORY_WEIGHTS, rng.random() * 100)]
        prefix, lo, hi = CATEGORIES[cat]
        price = (
            rng.randrange(lo, hi + 1) * 100
            + rng.choice((0, 0, 50, 99, 99, 99))
            - 100 * (rng.random() < 0.5)
        )
        qty = 1 if rng.random() < 0.88 else 2
        items.append((f"{prefix}-{rng.randrange(1000, 10000)}", cat, qty, max(price, 199)))
    return items


def _discount(rng: random.Random, pence: int) -> int:
    r = rng.random()
    if r < 0.72:
        return 0
    if r < 0.87:
        return pence // 10
    if r < 0.95:
        return pence // 5
    return 500 if pence > 3000 else 0


def assign_purchases(seed: int, people: list[Person]) -> None:
    """Spread each buyer's orders over their active window with seasonality."""
    rng = _rng(seed, "purchases")
    for p in people:
        lo, hi = p.active
        p.buys = sorted(_pick_day(rng, lo, hi) for _ in range(p.n_orders))


def web_orders(seed: int, people: list[Person]) -> Table:
    """Web orders: logged-in orders carry the account (and its e-mail); ~20 % are
    guest checkouts keyed only by an e-mail typed at checkout."""
    rng = _rng(seed, "web")
    drafts = []
    for p in people:
        share = SEGMENTS[p.segment][2]
        for day in p.buys:
            if rng.random() >= share:
                continue
            ordinal = START_ORD + day
            live = [a for a in p.accounts if a[1] <= ordinal]
            if live and rng.random() < 0.88:
                account_id, _, email = live[-1] if rng.random() < 0.8 else rng.choice(live)
            else:
                account_id, email = None, vary_email(rng, p.email, 1.0)
                if rng.random() < 0.08:
                    email = rng.choice([f" {email}", f"{email} ", email.upper()])
            hour = bisect.bisect_right(WEB_HOUR_CUM, rng.random() * WEB_HOUR_CUM[-1])
            secs = hour * 3600 + rng.randrange(3600)
            items = _basket(rng, 3)
            subtotal = sum(q * u for _, _, q, u in items)
            discount = _discount(rng, subtotal)
            status = WEB_STATUS_POOL.draw(rng)
            order = {
                "order_id": "",
                "account_id": account_id,
                "email": email,
                "placed_at": f"{_iso_date(ordinal)}T{_hms(secs)}Z",
                "status": status,
                "currency": "GBP",
                "subtotal": subtotal / 100,
                "discount": discount / 100,
                "total": (subtotal - discount) / 100,
                "items": [
                    {"sku": s, "category": c, "qty": q, "unit_price": u / 100}
                    for s, c, q, u in items
                ],
            }
            drafts.append((day, secs, len(drafts), order, p.pid))
    drafts.sort(key=lambda d: d[:3])
    table = Table("web_orders", "order_id")
    for n, (*_, order, pid) in enumerate(drafts, start=1_000_001):
        order["order_id"] = f"W{n}"
        table.add(order, pid)
    return table


def _till_time(rng: random.Random, ordinal: int) -> int:
    opens, closes = (10, 16) if date.fromordinal(ordinal).weekday() == 6 else (9, 20)
    return rng.randrange(opens * 60, closes * 60)


def store_orders(seed: int, people: list[Person]) -> Table:
    """Till receipts: card holders show their card most of the time; everyone else
    is anonymous.  ~5 % RETURN (positive = money back) and ~2 % VOID."""
    rng = _rng(seed, "store")
    drafts = []
    for p in people:
        share = SEGMENTS[p.segment][2]
        for day in p.buys:
            if rng.random() < share:
                continue
            if date.fromordinal(START_ORD + day).strftime("%m%d") == "1225":
                day += 1  # shops are shut on Christmas Day; Boxing Day sale instead
            ordinal = START_ORD + day
            cards = [c for c, joined in p.cards if joined <= ordinal]
            card = cards[-1] if cards and rng.random() < 0.85 else ""
            store = p.home_store if rng.random() < 0.85 else rng.choice(STORES)
            kind = TILL_TYPE_POOL.draw(rng)
            gross = sum(q * u for _, _, q, u in _basket(rng, 4))
            discount = _discount(rng, gross) if kind != "RETURN" else 0
            minute = _till_time(rng, ordinal)
            drafts.append((day, minute, len(drafts), store, card, kind, gross, discount, p))
    drafts.sort(key=lambda d: d[:3])
    table = Table("store_orders", 0)
    for n, (day, minute, _, store, card, kind, gross, disc, p) in enumerate(drafts, 5_000_001):
        sold_at = f"{_dmy(START_ORD + day)} {minute // 60:02d}:{minute % 60:02d}"
        row = [f"R{n}", store, card, sold_at, kind, _money(gross), _money(disc),
               _money(gross - disc), "GBP"]  # fmt: skip
        table.add(row, p.pid if card else "")
    return table


# --------------------------------------------------------------------------- surveys


def surveys(seed: int, people: list[Person], rate: float = 1 / 3) -> Table:
    """Post-purchase survey: about one answer per three buyers (``rate``), identified by an
    e-mail (often re-typed) and/or the e-shop account id."""
    rng = _rng(seed, "surveys")
    drafts = []
    for p in people:
        if not p.buys or rng.random() >= rate:
            continue
        day = rng.choice(p.buys)
        ordinal = min(END_ORD, START_ORD + day + rng.randrange(0, 15))
        crm_id = ""
        live = [a for a in p.accounts if a[1] <= ordinal]
        key = rng.random()
        if live and key < 0.75:
            crm_id = live[-1][0]
        email = "" if crm_id and key < 0.25 else vary_email(rng, p.email, 1.2)
        nps = NPS_POOL.draw(rng)  # promoter-heavy, with a tail of detractors
        csat = (
            ""
            if rng.random() < 0.15
            else str(min(5, max(1, round(nps / 2.2 + rng.gauss(0.3, 0.7)))))
        )
        comment = rng.choice(COMMENTS) if rng.random() < 0.55 else ""
        secs = rng.randrange(6 * 3600, 24 * 3600)
        stamp = f"{_iso_date(ordinal)}T{_hms(secs)}Z"
        drafts.append(
            (ordinal, secs, len(drafts), [email, crm_id, stamp, str(nps), csat, comment], p.pid)
        )
    drafts.sort(key=lambda d: d[:3])
    table = Table("surveys", 0)
    for n, (*_, row, pid) in enumerate(drafts, start=1):
        table.add([f"SR{n:06d}", *row], pid)
    return table


# --------------------------------------------------------------------------- planted errors


def plant_errors(seed: int, tables: dict[str, Table], people: list[Person], count: int) -> None:
    """Break ``count`` rows per error code, deterministically, and label them.

    Leaf rows (orders, surveys) are corrupted in place; CRM-level ``missing_id`` /
    ``duplicate_id`` rows are *extra* rows so every genuine account stays valid.
    Each chosen row is corrupted at most once.
    """
    rng = _rng(seed, "errors")
    eshop, loyalty = tables["eshop"], tables["loyalty"]
    web, store, survey = tables["web"], tables["store"], tables["survey"]
    taken: set[tuple[str, int]] = set()

    def pick(table: Table, ok=lambda row: True, rng: random.Random = rng) -> int:
        for _ in range(10_000):
            i = rng.randrange(len(table.rows))
            if (table.source, i) not in taken and not table.errors[i] and ok(table.rows[i]):
                taken.add((table.source, i))
                return i
        raise RuntimeError(f"no row to corrupt in {table.source}")

    def halves(n: int) -> tuple[int, int]:
        return n - n // 2, n // 2

    by_pid = {p.pid: p for p in people}
    # In-place corruptions first (indexes shift once rows are inserted).
    n_web, n_store = halves(count)
    for _ in range(n_web):  # a discount larger than the basket
        i = pick(web)
        o = web.rows[i]
        o["discount"] = round(o["subtotal"] + rng.randrange(1, 20), 2)
        o["total"] = round(o["subtotal"] - o["discount"], 2)
        web.errors[i] = "negative_amount"
    for _ in range(n_store):  # a sale keyed in with a minus sign
        i = pick(store, lambda r: r[4] == "SALE" and r[6] == "0.00")
        store.rows[i][5] = "-" + store.rows[i][5]
        store.rows[i][7] = "-" + store.rows[i][7]
        store.errors[i] = "negative_amount"

    n_dob, n_ts = halves(count)
    for _ in range(n_dob):
        i = pick(loyalty, lambda r: bool(r[4]))
        year = int(loyalty.rows[i][4][-4:])
        loyalty.rows[i][4] = rng.choice(["31/02", "30/02", "31/04", "31/06", "31/09"]) + f"/{year}"
        loyalty.errors[i] = "impossible_date"
    for _ in range(n_ts):
        i = pick(web)
        stamp = web.rows[i]["placed_at"]
        bad = rng.choice(["2025-02-30", "2024-02-31", "2026-02-29", "2025-04-31", "2024-06-31"])
        web.rows[i]["placed_at"] = bad + stamp[10:]
        web.errors[i] = "impossible_date"

    for _ in range(count):  # the "@" lost: ingest never guesses where it was
        i = pick(eshop)
        local, domain = eshop.rows[i][3].split("@")
        eshop.rows[i][3] = rng.choice([f"{local}{domain}", f"{local}.{domain}"])
        eshop.errors[i] = "malformed_email"
    # Dirt that is no error: an "@" typed as " at ", which ingest repairs (`ingest.mapping`).
    # From a random stream of its own: the errors' stream decides where errors go.
    spelled = _rng(seed, "spelled-out at")
    for _ in range(count):
        i = pick(eshop, rng=spelled)
        local, domain = eshop.rows[i][3].split("@")
        eshop.rows[i][3] = f"{local} at {domain}"

    for _ in range(count):
        i = pick(survey)
        survey.rows[i][4] = rng.choice(["11", "-1", "11", "12"])
        survey.errors[i] = "nps_out_of_range"

    for _ in range(count):  # a comma decimal and a letter O for a zero
        i = pick(store, lambda r: r[4] == "SALE" and r[6] == "0.00")
        pounds, pence = store.rows[i][5].split(".")
        bad = f"{pounds},{pence[0]}O" if rng.random() < 0.5 else f"{pounds}.{pence[0]}O"
        store.rows[i][5] = store.rows[i][7] = bad
        store.errors[i] = "non_numeric_amount"

    n_eshop, n_store = halves(count)
    for _ in range(n_store):
        i = pick(store)
        store.rows[i][0] = ""
        store.errors[i] = "missing_id"

    # Extra rows.  A re-used id always comes *after* the genuine row, so "first
    # occurrence wins" keeps the genuine one - exactly what ground truth says.
    def near_after(table: Table, i: int) -> int:
        return min(len(table.rows) - 1, i + rng.randrange(0, 40))

    valid_accounts = [i for i, e in enumerate(eshop.errors) if not e]
    extras: list[tuple[int, Row, str, str]] = []
    for _ in range(n_eshop):  # a half-created account the export lost the id of
        p = by_pid[eshop.pids[rng.choice(valid_accounts)]]
        row = eshop_record(rng, p, alt_email(rng, p), END_ORD - rng.randrange(400), 1.0)
        extras.append((rng.randrange(len(eshop.rows)), row, p.pid, "missing_id"))
    n_eshop, n_store = halves(count)
    for _ in range(n_eshop):  # an id reused for someone else (a botched migration)
        i = rng.choice(valid_accounts)
        p = rng.choice(people)
        row = eshop_record(rng, p, alt_email(rng, p), END_ORD - rng.randrange(400), 1.0)
        row[0] = eshop.rows[i][0]
        extras.append((near_after(eshop, i), row, p.pid, "duplicate_id"))
    eshop.insert_after(extras)

    valid_receipts = [i for i, e in enumerate(store.errors) if not e]
    extras = []
    for _ in range(n_store):  # the till replayed a receipt number for a new sale
        i = rng.choice(valid_receipts)
        src = store.rows[i]
        gross = sum(q * u for _, _, q, u in _basket(rng, 2))
        row = [src[0], src[1], "", src[3], "SALE", _money(gross), "0.00", _money(gross), "GBP"]
        extras.append((near_after(store, i), row, "", "duplicate_id"))
    store.insert_after(extras)


# --------------------------------------------------------------------------- writers


def _open(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8", newline="")


def write_csv(path: Path, header: list[str], rows: list[Row], delimiter: str = ",") -> None:
    with _open(path) as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with _open(path) as fh:
        fh.write("".join(dumps(r) + "\n" for r in rows))


def write_truth(path: Path, tables: list[Table]) -> int:
    """Ground truth in file order (so even rows with a blank id can be lined up)."""
    rows = [
        [t.source, t.record_id(i), t.pids[i], t.errors[i]]
        for t in tables
        for i in range(len(t.rows))
    ]
    write_csv(path, TRUTH_HEADER, rows)
    return len(rows)


# --------------------------------------------------------------------------- entry point


def generate(
    out_dir: Path,
    seed: int = 7,
    persons: int = 1200,
    orders_per_person: float | None = None,
    surveys_per_person: float | None = None,
) -> dict[str, int]:
    """Write the sample input files into out_dir; return {file_name: data_row_count}.

    Same arguments give byte-identical files.  Planted invalid rows scale with size (about
    one per 150 persons per error code, at least 5). By default about half the persons buy
    (4-5 orders per person, one survey per three buyers); benchmarks that need a set volume
    (issue 8: ~10 orders and ~1/3 survey per customer) give ``orders_per_person`` (each
    buyer's order count is scaled, so the skew of who buys how much is kept) and
    ``surveys_per_person``.
    """
    if persons < 50:
        raise ValueError("persons must be at least 50 to plant every kind of dirt")
    # Millions of small, acyclic objects: the cyclic GC only re-scans them over and
    # over (about a third of the run time at 100k persons), so pause it.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(Path(out_dir), seed, persons, orders_per_person, surveys_per_person)
    finally:
        if was_enabled:
            gc.enable()


def _generate(
    out_dir: Path,
    seed: int,
    persons: int,
    orders_per_person: float | None,
    surveys_per_person: float | None,
) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    people = make_people(seed, persons)
    buyers = [p for p in people if p.n_orders]
    if orders_per_person is not None and buyers:
        factor = orders_per_person * persons / sum(p.n_orders for p in buyers)
        for p in buyers:
            p.n_orders = max(1, round(p.n_orders * factor))
    survey_rate = 1 / 3
    if surveys_per_person is not None and buyers:
        survey_rate = min(1.0, surveys_per_person * persons / len(buyers))
    eshop = eshop_rows(seed, people)
    loyalty = loyalty_rows(seed, people)
    assign_purchases(seed, people)
    tables = {
        "eshop": eshop,
        "loyalty": loyalty,
        "web": web_orders(seed, people),
        "store": store_orders(seed, people),
        "survey": surveys(seed, people, survey_rate),
    }
    plant_errors(seed, tables, people, max(5, persons // 150))

    write_csv(out_dir / ESHOP_FILE, ESHOP_HEADER, eshop.rows)
    write_csv(out_dir / LOYALTY_FILE, LOYALTY_HEADER, loyalty.rows, delimiter=";")
    write_jsonl(out_dir / WEB_FILE, tables["web"].rows)
    write_csv(out_dir / STORE_FILE, STORE_HEADER, tables["store"].rows)
    write_csv(out_dir / SURVEY_FILE, SURVEY_HEADER, tables["survey"].rows)
    ordered = [tables[k] for k in ("eshop", "loyalty", "web", "store", "survey")]
    files = (ESHOP_FILE, LOYALTY_FILE, WEB_FILE, STORE_FILE, SURVEY_FILE)
    counts = {name: len(t.rows) for name, t in zip(files, ordered, strict=True)}
    counts[TRUTH_FILE] = write_truth(out_dir / TRUTH_FILE, ordered)
    return counts
