"""Held-out, dirty CRM customer records with ground truth, for judging identity resolution.

Why a second generator (issue 4): ``ccv.sample_data`` produces the pipeline's own sample
inputs, and a resolver tuned on it can look better than it is.  This module is written
independently of it (own name lists, own dirt, own formats) and models the mess real CRM
exports contain, so that ccv and other linkers can be scored on data nobody tuned for.
It is deterministic (``numpy.random.Generator`` seeded from ``(seed, stage)``, never the
clock) and vectorised enough to write 1M records in well under a minute on 2 cores: the
clean values are built with numpy/pandas, and Python only touches the values that are
corrupted.

Output (``<out>/identity_<level>_<records>_s<seed>.parquet`` + ``..._truth.parquet``)::

    record_id, source, first_name, last_name, full_name, email, phone, birth_date,
    postcode, city, loyalty_id                                   -- all text, null = missing
    truth: record_id, person_id, household_id, noise              -- noise: bit flags below

People.  Persons have 1 record (70 %), 2 (17 %), 3 (7 %), 4 (4 %) or 5 (2 %), so ~30 % of
persons have 2+ records; records are shuffled so order tells nothing.  Names come from
weighted UK lists (Zipf-like, so "James Smith" occurs many times: natural namesakes) plus a
long tail of compound surnames.  Each person has a DOB (age 18-90), a home postcode/town,
a mobile, a personal e-mail (unique, as providers enforce) and maybe a loyalty card (60 %).

Sources and their habits (the resolver sees ``source`` and may parse per source):

* ``crm_a`` - web shop: ``first_name`` / ``last_name`` split, ``full_name`` empty; ISO birth
  dates ``1984-03-07``; phones ``+447700900123`` / ``+44 7700 900123`` / ``07700900123``;
  upper-case postcodes; loyalty card for 35 % of card holders.
* ``crm_b`` - call-centre system: only ``full_name`` as "SMITH, Mr Robert" / "Mr SMITH,
  Robert" / "Smith, Robert" (surname first, titles); day-first ``07/03/1984``; phones as
  typed (``07700 900123``, ``(07700) 900-123``, ``0044 7700 900123``...) and, after a trip
  through Excel, ``4.47701E+11`` or without the leading zero; postcodes often without the
  space or lower case; towns in capitals; loyalty ids lose their leading zeros (Excel).
* ``crm_c`` - till/loyalty system: ``full_name`` "Robert Smith" in ASCII (accents dropped),
  sometimes only an initial ("R Smith"); ``07-Mar-1984`` dates; e-mails masked as on a
  receipt (``rob***@gmail.com``, ``r***h@gmail.com``); town often missing; the card number
  always present (a person without a card gets a one-off card).

Relationships that make linking hard: households (a person joins the previous person's
address: same postcode/town, 70 % same surname, 40 % the same family e-mail, 50 % the same
landline instead of their mobile, 25 % the same family loyalty card, 8 % "junior" with the
head's exact name); namesakes (a person copies an earlier, unrelated person's name, with a
different DOB and address); and drift between one person's records (moved house, new
e-mail, new phone, a replacement loyalty card for 10 % of crm_c records).

Corruption rates per value (per record for the record-level ones), by level::

    rate                      easy    medium  hard    what it does
    typo                      0.02    0.06    0.12    keyboard neighbour, dropped, doubled or
                                                      transposed character (names, email,
                                                      postcode, phone; city and loyalty id
                                                      at half the rate)
    ocr                       0.005   0.02    0.06    0/O, 1/l/I, rn<->m, 5/S, 8/B, 2/Z, 6/G
    unicode_junk              0.005   0.02    0.05    U+200B, U+FEFF, soft hyphen, NBSP,
                                                      fullwidth letters, combining accents
    nickname                  0.05    0.15    0.25    Robert -> Bob/Rob/Bobby, Elizabeth ->
                                                      Liz/Beth... (if the name has one)
    swap_names                0.005   0.02    0.05    first and last name exchanged
    initial_only (crm_c)      0.02    0.05    0.10    "R Smith"
    dob_swap                  0.01    0.03    0.06    day and month exchanged (day <= 12)
    dob_typo                  0.005   0.015   0.03    year +-1 or its last two digits swapped
    placeholder               0.002   0.005   0.015   1900-01-01, noemail@noemail.com,
                                                      00000000000 (shared junk values)
    missing (added per field) 0.04    0.10    0.22    on top of each source's own habits
    masked_email (crm_c)      0.15    0.35    0.60
    excel_phone (crm_b)       0.01    0.03    0.08
    moved (2nd+ records)      0.03    0.08    0.15    another postcode and town
    new_email (2nd+ records)  0.04    0.10    0.20    another address of the same person
    new_phone (2nd+ records)  0.04    0.10    0.18
    household (persons)       0.02    0.05    0.10
    namesake (persons)        0.01    0.03    0.06

Truth ``noise`` bit flags (set only where a value really changed)::

    1 typo, 2 ocr, 4 unicode_junk, 8 nickname, 16 swap_names, 32 dob_swap, 64 dob_typo,
    128 placeholder, 256 missing (beyond the source's habits), 512 masked_email,
    1024 excel_phone, 2048 moved, 4096 new_email, 8192 new_phone, 16384 initial_only

CLI::

    .venv/bin/python benchmarks/identity_data.py --records 1000000 --level medium --seed 1 \\
        --out benchmarks/out/ [--csv] [--per-source-csv]
"""

from __future__ import annotations

import argparse
import gc
import time
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# --------------------------------------------------------------------------- levels


@dataclass(frozen=True)
class Level:
    """Corruption rates of one difficulty level (see the module docstring)."""

    typo: float
    ocr: float
    unicode_junk: float
    nickname: float
    swap_names: float
    initial_only: float
    dob_swap: float
    dob_typo: float
    placeholder: float
    missing: float
    masked_email: float
    excel_phone: float
    moved: float
    new_email: float
    new_phone: float
    household: float
    namesake: float


LEVELS: dict[str, Level] = {
    "easy": Level(0.02, 0.005, 0.005, 0.05, 0.005, 0.02, 0.01, 0.005, 0.002, 0.04, 0.15,
                  0.01, 0.03, 0.04, 0.04, 0.02, 0.01),
    "medium": Level(0.06, 0.02, 0.02, 0.15, 0.02, 0.05, 0.03, 0.015, 0.005, 0.10, 0.35,
                    0.03, 0.08, 0.10, 0.10, 0.05, 0.03),
    "hard": Level(0.12, 0.06, 0.05, 0.25, 0.05, 0.10, 0.06, 0.03, 0.015, 0.22, 0.60,
                  0.08, 0.15, 0.20, 0.18, 0.10, 0.06),
}  # fmt: skip

FLAGS = {
    "typo": 1, "ocr": 2, "unicode_junk": 4, "nickname": 8, "swap_names": 16, "dob_swap": 32,
    "dob_typo": 64, "placeholder": 128, "missing": 256, "masked_email": 512,
    "excel_phone": 1024, "moved": 2048, "new_email": 4096, "new_phone": 8192,
    "initial_only": 16384,
}  # fmt: skip

COLUMNS = [
    "record_id", "source", "first_name", "last_name", "full_name", "email", "phone",
    "birth_date", "postcode", "city", "loyalty_id",
]  # fmt: skip
SOURCES = np.array(["crm_a", "crm_b", "crm_c"], dtype=object)
SOURCE_P = [0.45, 0.25, 0.30]
RECORDS_PER_PERSON = ([1, 2, 3, 4, 5], [0.70, 0.17, 0.07, 0.04, 0.02])

# --------------------------------------------------------------------------- vocabularies


def _words(text: str) -> list[str]:
    """Space-separated vocabulary; "_" stands for a space inside one name (Ní Bhriain)."""
    return [w.replace("_", " ") for w in text.split()]


FEMALE = _words(
    "Olivia Amelia Emily Sarah Emma Sophie Charlotte Jessica Elizabeth Katherine Margaret "
    "Rebecca Jennifer Victoria Susan Patricia Mary Hannah Lucy Isla Ava Grace Chloe Ella "
    "Mia Lily Ruby Poppy Evie Freya Isabella Alice Florence Daisy Phoebe Matilda Rosie Holly "
    "Laura Rachel Nicola Claire Helen Karen Julie Joanne Louise Michelle Lisa Amanda Emma "
    "Samantha Natalie Gemma Kelly Stephanie Jade Danielle Amy Zoë Siobhán Niamh Aoife Renée "
    "Priya Aisha Fatima Abigail Deborah Christine Linda Barbara Dorothy Joan Anne Catherine "
    "Caroline Alison Jacqueline Kathleen Pauline Valerie Wendy Sandra Angela Tracey Sharon "
    "Diane Janet Gillian Frances Beatrice Harriet Imogen Megan Bethany Leah Courtney Paige "
    "Inés Małgorzata Agnieszka Élodie"
)
MALE = _words(
    "James Oliver Jack Harry George Thomas William Robert Richard Michael David Daniel "
    "Christopher Matthew Joseph Samuel Benjamin Edward Anthony Andrew Alexander Nicholas "
    "Charles Henry Noah Leo Arthur Oscar Freddie Archie Theo Jacob Alfie Isaac Joshua Ethan "
    "Lewis Ryan Adam Luke Liam Jamie Callum Connor Kieran Dean Lee Craig Gary Paul Mark "
    "Stephen Peter John Ian Neil Simon Graham Kevin Martin Jason Darren Philip Timothy "
    "Jonathan Patrick Frederick Gerald Raymond Kenneth Keith Brian Colin Dennis Terence "
    "Francis Douglas Stuart Alan Gordon Trevor Barry Roger Nigel Malcolm Howard Vincent "
    "Mohammed Raj Piotr Łukasz José François Seán Ciarán Søren Jürgen Joël Omar Ali Hamza"
)
LAST = _words(
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Wood Harris Lewis Martin Jackson "
    "Clarke Clark Turner Hill Scott Cooper Morris Ward Moore King Watson Baker Harrison "
    "Morgan Patel Young Allen Mitchell James Anderson Phillips Lee Bell Parker Davis Kelly "
    "Bennett Carter Cook Shaw Griffiths Richardson Murphy Jenkins Simpson Marshall Bailey "
    "Collins Stewart Chapman Adams Mason Hunt Rogers Gray Palmer Holmes Price Campbell "
    "Matthews Lloyd Owen Ellis Reid Mills Richards Fox Graham Powell Knight Lane Webb Dixon "
    "Kennedy Burton Fisher Lawrence Dean Butler Russell Barker Hudson Pearson Gibson Cox "
    "Stevens Andrews Wells Foster Cole Ross Mann Fraser Payne Pearce Murray Hamilton Grant "
    "Hunter Ryan Lowe Reynolds Wallace Harvey Hart Porter Spencer Sutton Byrne Kaur Singh "
    "Khan Ahmed Ali Hussain Begum Shah Rahman Chen Wang Nguyen Kowalski Nowak Wójcik "
    "O'Brien O'Connor O'Neill McDonald MacLeod McKenzie Fitzgerald Doherty Gallagher Quinn "
    "Brennan Walsh Lynch García Fernández Núñez Müller Dubois Lefèvre Rossi Brontë "
    "Smith-Jones Ní_Bhriain"
)
# Long tail: compound English surnames ("Ashworth", "Blackwood") - rare, mostly unique.
TAIL_HEADS = _words(
    "Ash Black Brad Brook Bur Chad Cross Dal Den Elm Fair Farn Gold Green Hart Hay Holl "
    "Kings Lang Lock Marsh Mid Mill New North Oak Pem Red Ring Rother Rush Shel Stan Stock "
    "Thorn Wake Well West White Whit Win Wood Brad Cal Pen Tre Ash Ald Bar Bel Bick"
)
TAIL_TAILS = _words(
    "worth wood ford ley ton field ham well by combe hurst dale more cliffe bridge stone "
    "wick shaw burn brook land thorpe stead church"
)

NICKNAMES = {
    "Robert": ["Bob", "Rob", "Bobby", "Robbie"], "William": ["Bill", "Will", "Billy", "Liam"],
    "Elizabeth": ["Liz", "Beth", "Lizzie", "Betty", "Eliza"], "Katherine": ["Kate", "Kathy",
    "Katie", "Kat"], "Catherine": ["Cathy", "Kate", "Cath"], "James": ["Jim", "Jimmy",
    "Jamie"], "Thomas": ["Tom", "Tommy"], "Michael": ["Mike", "Mick", "Mikey"], "David":
    ["Dave", "Davey"], "Daniel": ["Dan", "Danny"], "Christopher": ["Chris", "Kit"],
    "Matthew": ["Matt"], "Joseph": ["Joe", "Joey"], "Samuel": ["Sam", "Sammy"], "Benjamin":
    ["Ben", "Benny"], "Edward": ["Ed", "Ted", "Eddie", "Ned"], "Anthony": ["Tony"], "Andrew":
    ["Andy", "Drew"], "Richard": ["Rick", "Dick", "Rich"], "Margaret": ["Maggie", "Peggy",
    "Meg"], "Rebecca": ["Becky", "Becca"], "Jennifer": ["Jenny", "Jen"], "Victoria":
    ["Vicky", "Tori"], "Patricia": ["Pat", "Trish", "Patty"], "Susan": ["Sue", "Susie"],
    "Jessica": ["Jess", "Jessie"], "Charlotte": ["Lottie", "Charlie"], "Oliver": ["Ollie"],
    "Alexander": ["Alex", "Sandy"], "Nicholas": ["Nick", "Nicky"], "Abigail": ["Abby"],
    "Charles": ["Charlie", "Chuck"], "Henry": ["Harry", "Hal"], "Frederick": ["Fred",
    "Freddie"], "Timothy": ["Tim"], "Jonathan": ["Jon", "Jonny"], "Stephen": ["Steve"],
    "Peter": ["Pete"], "Philip": ["Phil"], "Kenneth": ["Ken", "Kenny"], "Samantha": ["Sam",
    "Sammy"], "Deborah": ["Debbie", "Deb"], "Christine": ["Chris", "Chrissie"], "Barbara":
    ["Barb", "Babs"], "Dorothy": ["Dot", "Dottie"], "Alison": ["Ali"], "Jacqueline":
    ["Jackie"], "Kathleen": ["Kath", "Kathy"], "Frances": ["Fran"], "Gillian": ["Gill",
    "Jill"], "Isabella": ["Izzy", "Bella"], "Matilda": ["Tilly"], "Florence": ["Flo"],
    "Harriet": ["Hattie"], "Valerie": ["Val"], "Raymond": ["Ray"], "Terence": ["Terry"],
    "Francis": ["Frank"], "Douglas": ["Doug"], "Gerald": ["Gerry"], "Patrick": ["Pat",
    "Paddy"], "Joshua": ["Josh"], "Zoë": ["Zoe"],
}  # fmt: skip

# (town, postcode areas, highest district number, weight, spelling variants seen in CRMs)
TOWNS = [
    ("London", ("E", "N", "SE", "SW", "W", "NW", "EC", "WC"), 20, 60, ("LONDON", "Lond")),
    ("Manchester", ("M",), 40, 12, ("Manchster", "Gtr Manchester")),
    ("Birmingham", ("B",), 48, 12, ("B'ham", "Birmingam")),
    ("Leeds", ("LS",), 29, 8, ()), ("Glasgow", ("G",), 80, 8, ()),
    ("Liverpool", ("L",), 38, 7, ("L'pool",)), ("Bristol", ("BS",), 49, 7, ()),
    ("Sheffield", ("S",), 36, 6, ("Sheffeld",)), ("Edinburgh", ("EH",), 17, 6, ("Edinburg",)),
    ("Cardiff", ("CF",), 24, 5, ("Caerdydd",)), ("Leicester", ("LE",), 19, 5, ("Leics",)),
    ("Newcastle upon Tyne", ("NE",), 16, 5, ("Newcastle", "Newcastle-upon-Tyne")),
    ("Nottingham", ("NG",), 22, 5, ("Nottm", "Notts")), ("Coventry", ("CV",), 8, 4, ()),
    ("Bradford", ("BD",), 15, 4, ()), ("Stoke-on-Trent", ("ST",), 12, 3, ("Stoke",)),
    ("Southampton", ("SO",), 19, 3, ("Soton",)), ("Brighton", ("BN",), 3, 3, ("Brighton & Hove",)),
    ("Plymouth", ("PL",), 9, 3, ()), ("Reading", ("RG",), 31, 3, ()),
    ("Derby", ("DE",), 24, 3, ()), ("Norwich", ("NR",), 7, 2, ()), ("York", ("YO",), 32, 2, ()),
    ("Oxford", ("OX",), 4, 2, ("Oxon",)), ("Cambridge", ("CB",), 5, 2, ("Cambs",)),
    ("Bath", ("BA",), 3, 2, ()), ("Aberdeen", ("AB",), 25, 2, ()), ("Swansea", ("SA",), 9, 2, ()),
    ("Belfast", ("BT",), 17, 3, ()), ("Milton Keynes", ("MK",), 19, 2, ("MK", "Milton Keynse")),
    ("St Albans", ("AL",), 4, 1, ("St. Albans", "Saint Albans")), ("Croydon", ("CR",), 9, 2, ()),
]  # fmt: skip
INWARD_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"), dtype=object)

DOMAINS = (
    ["gmail.com", "hotmail.co.uk", "yahoo.co.uk", "outlook.com", "btinternet.com",
     "icloud.com", "hotmail.com", "live.co.uk", "sky.com", "aol.com", "example.com"],
    [30, 14, 8, 10, 6, 6, 5, 4, 3, 2, 12],
)  # fmt: skip
TITLES = (["Mr", "Mrs", "Ms", "Miss", "Dr", "Mr.", "Mrs.", "Prof"], [30, 20, 12, 8, 3, 4, 2, 1])
PLACEHOLDER_EMAILS = ["noemail@noemail.com", "none@none.com", "na@na.com", "no@email.com"]
PLACEHOLDER_PHONES = ["00000000000", "07000000000", "0", "01234567890"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

KEYBOARD = {
    "a": "qsz", "b": "vn", "c": "xv", "d": "sfe", "e": "wrd", "f": "dg", "g": "fh", "h": "gj",
    "i": "uo", "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o",
    "q": "w", "r": "et", "s": "ad", "t": "ry", "u": "yi", "v": "cb", "w": "qe", "x": "zc",
    "y": "tu", "z": "x", "0": "9", "1": "2", "2": "13", "3": "24", "4": "35", "5": "46",
    "6": "57", "7": "68", "8": "79", "9": "80",
}  # fmt: skip
OCR = [
    ("O", "0"), ("0", "O"), ("o", "0"), ("l", "1"), ("1", "l"), ("I", "1"), ("1", "I"),
    ("m", "rn"), ("rn", "m"), ("S", "5"), ("5", "S"), ("s", "5"), ("B", "8"), ("8", "B"),
    ("Z", "2"), ("2", "Z"), ("G", "6"), ("6", "G"), ("e", "c"), ("cl", "d"), ("h", "b"),
]  # fmt: skip
FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}


# --------------------------------------------------------------------------- helpers


def _rng(seed: int, stage: str) -> np.random.Generator:
    """One independent stream per stage, so changing one stage does not reshuffle others."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode())])


def _weighted(rng: np.random.Generator, n: int, weights) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _zipf_weights(n: int, s: float = 0.9) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1) ** s


def _ascii(text: str) -> str:
    """What a system that only stores ASCII makes of a name (José -> Jose, Łukasz -> Lukasz)."""
    text = text.replace("Ł", "L").replace("ł", "l").replace("ø", "o").replace("Ø", "O")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _slug(text: str) -> str:
    return "".join(c for c in _ascii(text).lower() if c.isalnum())


def _map_unique(values: np.ndarray, fn) -> np.ndarray:
    """``fn`` over an array with few distinct values (names, towns): once per distinct value."""
    codes, uniques = pd.factorize(values)
    return np.array([fn(u) for u in uniques], dtype=object)[codes]


def typo(s: str, r1: float, r2: float) -> str:
    """One keyboard slip: neighbour key, dropped, doubled or transposed character."""
    if len(s) < 3:
        return s
    i = 1 + int(r1 * (len(s) - 2))
    kind, r3 = divmod(r2 * 4, 1.0)
    c = s[i]
    if kind == 0 and c.lower() in KEYBOARD:
        keys = KEYBOARD[c.lower()]
        k = keys[int(r3 * len(keys))]
        return s[:i] + (k.upper() if c.isupper() else k) + s[i + 1 :]
    if kind == 1:
        return s[:i] + s[i + 1 :]
    if kind == 2:
        return s[:i] + c + s[i:]
    return s[: i - 1] + s[i] + s[i - 1] + s[i + 1 :]


def ocr(s: str, r1: float, r2: float) -> str:
    """A scanned-form misreading: one of the classic OCR confusions that applies to ``s``."""
    options = [(a, b) for a, b in OCR if a in s]
    if not options:
        return s
    a, b = options[int(r1 * len(options))]
    hits = [i for i in range(len(s)) if s.startswith(a, i)]
    i = hits[int(r2 * len(hits))]
    return s[:i] + b + s[i + len(a) :]


def unicode_junk(s: str, r1: float, r2: float) -> str:
    """Invisible or look-alike characters that survive copy-paste from web forms and PDFs."""
    if not s:
        return s
    kind = int(r1 * 6)
    i = int(r2 * (len(s) + 1))
    if kind == 0:
        return s[:i] + "\u200b" + s[i:]  # zero-width space
    if kind == 1:
        return "\ufeff" + s if r2 < 0.5 else s + "\u00a0"  # BOM / trailing NBSP
    if kind == 2:
        return s.replace(" ", "\u00a0") if " " in s else s[:i] + "\u00ad" + s[i:]
    if kind == 3:
        return "".join(FULLWIDTH.get(c, c) for c in s)  # fullwidth forms (Ｓｍｉｔｈ)
    if kind == 4:  # a combining accent after a vowel (decomposed, not NFC)
        vowels = [j for j, c in enumerate(s) if c in "aeiouAEIOU"]
        if not vowels:
            return s + "\u0301"
        j = vowels[int(r2 * len(vowels))] + 1
        return s[:j] + "\u0301" + s[j:]
    return s + " " if r2 < 0.5 else " " + s


# --------------------------------------------------------------------------- generator


class _Noise:
    """Applies one corruption to a random subset of a column and records what changed."""

    def __init__(self, rng: np.random.Generator, flags: np.ndarray) -> None:
        self.rng = rng
        self.flags = flags

    def apply(self, col: np.ndarray, rate: float, fn, flag: str | None, mask=None) -> None:
        n = len(col)
        hit = self.rng.random(n) < rate
        hit &= pd.notna(col) & (col != "")
        if mask is not None:
            hit &= mask
        idx = np.flatnonzero(hit)
        if not len(idx):
            return
        r = self.rng.random((len(idx), 2))
        old = col[idx]
        new = np.array([fn(s, a, b) for s, (a, b) in zip(old, r.tolist(), strict=True)], object)
        changed = new != old
        col[idx] = new
        if flag is not None:  # None: a harmless variant (case, gmail dots), not dirt
            self.flags[idx[changed]] |= FLAGS[flag]


def _postcodes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(postcode, town index) for n addresses, e.g. ("SW11 4QB", 0)."""
    town = _weighted(rng, n, [t[3] for t in TOWNS])
    areas = [t[1] for t in TOWNS]
    maxd = np.array([t[2] for t in TOWNS])[town]
    u = rng.random(n)
    district = 1 + (rng.random(n) * maxd).astype(int)
    digit = rng.integers(0, 10, n)
    l1 = INWARD_LETTERS[rng.integers(0, len(INWARD_LETTERS), n)]
    l2 = INWARD_LETTERS[rng.integers(0, len(INWARD_LETTERS), n)]
    pcs = [
        f"{areas[t][int(x * len(areas[t]))]}{d} {g}{a}{b}"
        for t, x, d, g, a, b in zip(
            town.tolist(), u.tolist(), district.tolist(), digit.tolist(), l1, l2, strict=True
        )
    ]
    return np.array(pcs, dtype=object), town


def _mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """National UK mobile numbers, 11 digits: 07[4-9]xxxxxxxx."""
    nums = rng.integers(7_400_000_000, 7_999_999_999, n)
    return np.array(["0" + s for s in nums.astype(str).tolist()], dtype=object)


def _landlines(rng: np.random.Generator, n: int) -> np.ndarray:
    london = rng.random(n) < 0.3
    nums = np.where(london, rng.integers(20_3000_0000, 20_8999_9999, n),
                    rng.integers(1_132_000_000, 1_999_999_999, n))  # fmt: skip
    return np.array(["0" + s for s in nums.astype(str).tolist()], dtype=object)


def _emails(rng, first: np.ndarray, last: np.ndarray, year: np.ndarray, salt: np.ndarray):
    """Personal e-mail addresses from name slugs; uniqueness enforced like a provider would."""
    n = len(first)
    f = _map_unique(first, _slug)
    la = _map_unique(last, _slug)
    yy = pd.Series(year % 100).astype(str).str.zfill(2).to_numpy(object)
    num = pd.Series(rng.integers(1, 100, n)).astype(str).to_numpy(object)
    initial = np.array([x[:1] for x in f], dtype=object)
    pattern = _weighted(rng, n, [30, 15, 12, 8, 12, 10, 6, 7])
    local = np.select(
        [pattern == k for k in range(8)],
        [f + "." + la, f + la, initial + "." + la, f + "_" + la, f + "." + la + num,
         f + np.array([x[:1] for x in la], dtype=object) + yy, initial + la + num, la + "." + f],
    ).astype(object)  # fmt: skip
    domain = np.array(DOMAINS[0], dtype=object)[_weighted(rng, n, DOMAINS[1])]
    email = local + "@" + domain
    for _ in range(6):  # make every person's own address unique
        dup = pd.Series(email).duplicated().to_numpy()
        if not dup.any():
            break
        idx = np.flatnonzero(dup)
        email[idx] = local[idx] + pd.Series(salt[idx] % 9973).astype(str).to_numpy(object)
        email[idx] = email[idx] + "@" + domain[idx]
        salt[idx] //= 7
        salt[idx] += rng.integers(1, 10**6, len(idx))
    return email


def _persons(seed: int, n: int, level: Level) -> dict[str, np.ndarray]:
    rng = _rng(seed, "persons")
    female = rng.random(n) < 0.52
    fem = np.array(FEMALE, dtype=object)
    mal = np.array(MALE, dtype=object)
    first = np.where(
        female,
        fem[_weighted(rng, n, _zipf_weights(len(fem), 0.8))],
        mal[_weighted(rng, n, _zipf_weights(len(mal), 0.8))],
    ).astype(object)
    common = np.array(LAST, dtype=object)[_weighted(rng, n, _zipf_weights(len(LAST), 0.9))]
    tail = (
        np.array(TAIL_HEADS, dtype=object)[rng.integers(0, len(TAIL_HEADS), n)]
        + np.array(TAIL_TAILS, dtype=object)[rng.integers(0, len(TAIL_TAILS), n)]
    )
    last = np.where(rng.random(n) < 0.75, common, tail).astype(object)
    # age 18-90, skewed to 30-50
    age_days = np.clip(rng.normal(44, 15, n), 18.05, 90) * 365.25
    dob = np.datetime64("2026-11-01") - age_days.astype("timedelta64[D]")
    postcode, town = _postcodes(rng, n)
    mobile = _mobiles(rng, n)
    landline = _landlines(rng, n)
    card = rng.random(n) < 0.6
    loyalty = np.array([f"{x:010d}" for x in rng.integers(1, 3_000_000_000, n).tolist()], object)

    # households: person i joins the household of the last person before it who did not join
    joins = rng.random(n) < level.household
    joins[0] = False
    idx = np.arange(n)
    head = np.maximum.accumulate(np.where(joins, 0, idx))
    hh = np.flatnonzero(joins)
    h = head[hh]
    postcode[hh], town[hh] = postcode[h], town[h]
    same_last = rng.random(len(hh)) < 0.7
    last[hh[same_last]] = last[h[same_last]]
    junior = rng.random(len(hh)) < 0.08
    first[hh[junior]], last[hh[junior]], female[hh[junior]] = (
        first[h[junior]], last[h[junior]], female[h[junior]])  # fmt: skip
    phone = mobile.copy()
    shared_phone = rng.random(len(hh)) < 0.5
    phone[hh[shared_phone]] = landline[h[shared_phone]]
    phone[h[shared_phone]] = np.where(
        rng.random(int(shared_phone.sum())) < 0.5, landline[h[shared_phone]],
        phone[h[shared_phone]])  # fmt: skip
    family_card = rng.random(len(hh)) < 0.25
    loyalty[hh[family_card]] = loyalty[h[family_card]]
    card[hh[family_card]] = card[h[family_card]] = True

    # namesakes: an unrelated earlier person's exact name, own DOB and address
    ns = np.flatnonzero((rng.random(n) < level.namesake) & ~joins & (idx > 0))
    src = (rng.random(len(ns)) * ns).astype(int)
    first[ns], last[ns], female[ns] = first[src], last[src], female[src]

    year = dob.astype("datetime64[Y]").astype(int) + 1970
    email = _emails(rng, first, last, year, rng.integers(1, 10**9, n))
    shared_mail = np.flatnonzero(joins)[rng.random(len(hh)) < 0.4]
    email[shared_mail] = email[head[shared_mail]]
    return {
        "first": first, "last": last, "female": female, "dob": dob, "postcode": postcode,
        "town": town, "phone": phone, "email": email, "card": card, "loyalty": loyalty,
        "household": head,
    }  # fmt: skip


def _alt_email(rng, email: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Another, genuinely different address of the same person (new provider or handle)."""
    n = len(email)
    local = np.array([e.split("@")[0] for e in email], dtype=object)
    dom = np.array(DOMAINS[0], dtype=object)[_weighted(rng, n, DOMAINS[1])]
    num = pd.Series(rng.integers(1, 1000, n)).astype(str).to_numpy(object)
    handle = _map_unique(first, _slug) + _map_unique(last, _slug)
    kind = rng.random(n)
    return np.where(kind < 0.5, local + "@" + dom, handle + num + "@" + dom).astype(object)


def _format_phone(rng, national: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Each source's phone habits, from the national form 07700900123."""
    styles = [
        lambda n: "+44" + n[1:],  # 0 +447700900123
        lambda n: f"+44 {n[1:5]} {n[5:]}",  # 1 +44 7700 900123
        lambda n: n,  # 2 07700900123
        lambda n: f"{n[:5]} {n[5:]}",  # 3 07700 900123
        lambda n: f"({n[:5]}) {n[5:8]}-{n[8:]}",  # 4 (07700) 900-123
        lambda n: f"0044 {n[1:5]} {n[5:]}",  # 5 0044 7700 900123
        lambda n: f"{n[:5]}-{n[5:8]}-{n[8:]}",  # 6 07700-900-123
        lambda n: f"+44 (0){n[1:5]} {n[5:]}",  # 7 +44 (0)7700 900123
        lambda n: f"{n[1:5]} {n[5:]}",  # 8 7700 900123
    ]
    weights = {
        "crm_a": [45, 25, 25, 5, 0, 0, 0, 0, 0],
        "crm_b": [0, 3, 15, 35, 15, 10, 12, 10, 0],
        "crm_c": [0, 0, 45, 25, 5, 0, 5, 5, 15],
    }
    style = np.zeros(len(national), dtype=int)
    for s, w in weights.items():
        m = source == s
        style[m] = _weighted(rng, int(m.sum()), w)
    return np.array(
        [
            styles[k](p) if len(p) == 11 else p
            for k, p in zip(style.tolist(), national, strict=True)
        ],
        dtype=object,
    )


def _excel(s: str, r1: float, r2: float) -> str:
    """A phone number that went through Excel: scientific notation or a lost leading zero."""
    digits = "".join(c for c in s if c.isdigit())
    if not digits:
        return s
    if r1 < 0.6:
        if digits.startswith("0") and not digits.startswith("00"):
            digits = "44" + digits[1:]
        digits = digits.lstrip("0") or "0"
        return f"{float(digits):.5E}" if r2 < 0.7 else f"{float(digits):.2E}"
    return digits.lstrip("0")


def _format_dates(rng, dob: np.ndarray, source: np.ndarray, level: Level, noise: _Noise):
    """Birth dates as each source writes them, with day/month swaps and year slips."""
    n = len(dob)
    y = dob.astype("datetime64[Y]").astype(int) + 1970
    m = dob.astype("datetime64[M]").astype(int) % 12 + 1
    d = (dob - dob.astype("datetime64[M]")).astype(int) + 1
    swap = (rng.random(n) < level.dob_swap) & (d <= 12) & (d != m)
    d2, m2 = np.where(swap, m, d), np.where(swap, d, m)
    noise.flags[swap] |= FLAGS["dob_swap"]
    slip = rng.random(n) < level.dob_typo
    kind = rng.random(n)
    yy = y % 100
    y_swapped = y - yy + (yy % 10) * 10 + yy // 10
    y2 = np.where(slip & (kind < 0.6), y + np.where(kind < 0.3, 1, -1), y)
    y2 = np.where(slip & (kind >= 0.6), y_swapped, y2)
    y2 = np.where(y2 > 2008, y, y2)  # keep it a plausible adult DOB
    noise.flags[y2 != y] |= FLAGS["dob_typo"]
    src = source.tolist()
    out = []
    for s, yv, mv, dv in zip(src, y2.tolist(), m2.tolist(), d2.tolist(), strict=True):
        if s == "crm_a":
            out.append(f"{yv:04d}-{mv:02d}-{dv:02d}")
        elif s == "crm_b":
            out.append(f"{dv:02d}/{mv:02d}/{yv:04d}")
        else:
            out.append(f"{dv:02d}-{MONTHS[mv - 1]}-{yv:04d}")
    return np.array(out, dtype=object)


def _mask_email(s: str, r1: float, r2: float) -> str:
    local, _, domain = s.partition("@")
    if r1 < 0.7:
        return f"{local[:3]}***@{domain}"
    return f"{local[:1]}***{local[-1:]}@{domain}"


def _email_variant(s: str, r1: float, r2: float) -> str:
    """Same mailbox spelled differently: case, gmail dots and +tags."""
    local, _, domain = s.partition("@")
    if domain == "gmail.com" and r1 < 0.5:
        local = local.replace(".", "") if "." in local else local + "+shop"
    if r2 < 0.5:
        return f"{local}@{domain}".upper()
    return f"{local.title()}@{domain}"


def generate(
    records: int, level: str = "medium", seed: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (records, truth) as DataFrames of text columns; deterministic in its arguments."""
    lv = LEVELS[level]
    sizes, probs = RECORDS_PER_PERSON
    mean = float(np.dot(sizes, probs))
    n_persons = int(records / mean * 1.05) + 10
    p = _persons(seed, n_persons, lv)
    rng = _rng(seed, f"records-{level}")
    counts = np.array(sizes)[rng.choice(len(sizes), size=n_persons, p=probs)]
    pidx = np.repeat(np.arange(n_persons), counts)[:records]
    n = len(pidx)
    starts = np.r_[0, np.flatnonzero(np.diff(pidx)) + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    later = rank > 0
    flags = np.zeros(n, dtype=np.int64)
    noise = _Noise(rng, flags)

    source = SOURCES[_weighted(rng, n, SOURCE_P)]
    is_a, is_b, is_c = source == "crm_a", source == "crm_b", source == "crm_c"

    # ---- per-record copies of the person, with drift between a person's records
    first = p["first"][pidx].copy()
    last = p["last"][pidx].copy()
    dob = p["dob"][pidx]
    postcode = p["postcode"][pidx].copy()
    town = p["town"][pidx].copy()
    phone = p["phone"][pidx].copy()
    email = p["email"][pidx].copy()
    loyalty = np.where(p["card"][pidx], p["loyalty"][pidx], None).astype(object)

    moved = later & (rng.random(n) < lv.moved)
    pc, tw = _postcodes(rng, int(moved.sum()))
    postcode[moved], town[moved] = pc, tw
    flags[moved] |= FLAGS["moved"]
    new_mail = later & (rng.random(n) < lv.new_email)
    email[new_mail] = _alt_email(rng, email[new_mail], first[new_mail], last[new_mail])
    flags[new_mail] |= FLAGS["new_email"]
    new_phone = later & (rng.random(n) < lv.new_phone)
    phone[new_phone] = _mobiles(rng, int(new_phone.sum()))
    flags[new_phone] |= FLAGS["new_phone"]
    one_off = is_c & (pd.isna(loyalty) | (rng.random(n) < 0.1))
    loyalty[one_off] = np.array(
        [f"{x:010d}" for x in rng.integers(3_000_000_000, 9_999_999_999, int(one_off.sum()))],
        dtype=object,
    )
    keep_card = is_c | (is_a & (rng.random(n) < 0.35)) | (is_b & (rng.random(n) < 0.15))
    loyalty[~keep_card] = None

    # ---- names
    def nick(s: str, r1: float, r2: float) -> str:
        options = NICKNAMES.get(s)
        return options[int(r1 * len(options))] if options else s

    has_nick = np.isin(first, list(NICKNAMES))
    noise.apply(first, lv.nickname, nick, "nickname", mask=has_nick)
    swap = rng.random(n) < lv.swap_names
    first[swap], last[swap] = last[swap], first[swap].copy()
    flags[swap] |= FLAGS["swap_names"]
    for col in (first, last):
        noise.apply(col, lv.typo, typo, "typo")
        noise.apply(col, lv.ocr, ocr, "ocr")
    # crm_c stores ASCII only
    first[is_c] = _map_unique(first[is_c], _ascii)
    last[is_c] = _map_unique(last[is_c], _ascii)
    case = rng.random(n)
    upper = case < np.where(is_b, 0.35, 0.06)
    lower = ~upper & (case < np.where(is_b, 0.38, 0.10))
    first = np.where(upper, pd.Series(first).str.upper(), first).astype(object)
    last = np.where(upper, pd.Series(last).str.upper(), last).astype(object)
    first = np.where(lower, pd.Series(first).str.lower(), first).astype(object)
    last = np.where(lower, pd.Series(last).str.lower(), last).astype(object)

    full = np.full(n, None, dtype=object)
    title = np.array(TITLES[0], dtype=object)[_weighted(rng, n, TITLES[1])]
    female = p["female"][pidx]
    title = np.where(np.isin(title, ["Mr", "Mr."]) & female, "Mrs", title)  # rough, as clerks do
    title = np.where(np.isin(title, ["Mrs", "Mrs.", "Ms", "Miss"]) & ~female, "Mr", title)
    b_style = rng.random(n)
    last_b = np.where(rng.random(n) < 0.6, pd.Series(last).str.upper(), last).astype(object)
    b_full = np.select(
        [b_style < 0.45, b_style < 0.7],
        [last_b + ", " + title + " " + first, title + " " + last_b + ", " + first],
        last_b + ", " + first,
    ).astype(object)
    full[is_b] = b_full[is_b]
    initial = is_c & (rng.random(n) < lv.initial_only)
    c_first = np.where(initial, np.array([s[:1] for s in first], dtype=object), first)
    flags[initial & (c_first != first)] |= FLAGS["initial_only"]
    full[is_c] = (c_first + " " + last)[is_c]
    first = np.where(is_a, first, None).astype(object)
    last = np.where(is_a, last, None).astype(object)
    for col in (first, last, full):
        noise.apply(col, lv.unicode_junk, unicode_junk, "unicode_junk")

    # ---- e-mail
    noise.apply(email, 0.15, _email_variant, None, mask=~is_c)
    noise.apply(email, lv.typo, typo, "typo")
    noise.apply(email, lv.ocr, ocr, "ocr")
    noise.apply(email, lv.masked_email, _mask_email, "masked_email", mask=is_c)
    noise.apply(email, lv.unicode_junk, unicode_junk, "unicode_junk")

    # ---- phone
    phone = _format_phone(rng, phone, source)
    noise.apply(phone, lv.typo, typo, "typo")
    noise.apply(phone, lv.excel_phone, _excel, "excel_phone", mask=is_b)

    # ---- birth date
    birth = _format_dates(rng, dob, source, lv, noise)

    # ---- postcode, city, loyalty id
    r = rng.random(n)
    nospace = r < np.where(is_b, 0.4, 0.05)
    postcode = np.where(nospace, pd.Series(postcode).str.replace(" ", ""), postcode)
    postcode = np.where((r > 0.9) & ~is_a, pd.Series(postcode).str.lower(), postcode).astype(object)
    noise.apply(postcode, lv.typo, typo, "typo")
    noise.apply(postcode, lv.ocr, ocr, "ocr")
    noise.apply(postcode, lv.unicode_junk, unicode_junk, "unicode_junk")
    names = np.array([t[0] for t in TOWNS], dtype=object)
    city = names[town]
    variant = rng.random(n) < 0.08
    alt = [TOWNS[t][4] for t in town[variant].tolist()]
    u = rng.random(int(variant.sum())).tolist()
    city[variant] = [
        v[int(x * len(v))] if v else c for v, x, c in zip(alt, u, city[variant], strict=True)
    ]
    city = np.where(is_b, pd.Series(city).str.upper(), city).astype(object)
    noise.apply(city, lv.typo / 2, typo, "typo")
    noise.apply(city, lv.unicode_junk, unicode_junk, "unicode_junk")
    excel_ids = is_b & pd.notna(loyalty)
    loyalty[excel_ids] = pd.Series(loyalty[excel_ids]).str.lstrip("0").to_numpy(object)
    noise.apply(loyalty, lv.typo / 2, typo, "typo")
    noise.apply(loyalty, lv.ocr, ocr, "ocr")

    # ---- placeholders and missing values
    for col, values in ((email, PLACEHOLDER_EMAILS), (phone, PLACEHOLDER_PHONES)):
        hit = rng.random(n) < lv.placeholder
        col[hit] = np.array(values, dtype=object)[rng.integers(0, len(values), int(hit.sum()))]
        flags[hit] |= FLAGS["placeholder"]
    hit = rng.random(n) < lv.placeholder
    birth[hit] = np.where(is_a, "1900-01-01", np.where(is_b, "01/01/1900", "01-Jan-1900"))[hit]
    flags[hit] |= FLAGS["placeholder"]

    habits = {  # share missing by source habit: (crm_a, crm_b, crm_c)
        "email": (0.02, 0.15, 0.25), "phone": (0.15, 0.05, 0.20),
        "birth": (0.35, 0.10, 0.50), "postcode": (0.03, 0.05, 0.15),
        "city": (0.05, 0.10, 0.40),
    }  # fmt: skip
    cols = {"email": email, "phone": phone, "birth": birth, "postcode": postcode, "city": city}
    for name, col in cols.items():
        ha, hb, hc = habits[name]
        habit = rng.random(n) < np.select([is_a, is_b], [ha, hb], hc)
        extra = ~habit & pd.notna(col) & (rng.random(n) < lv.missing)
        col[habit | extra] = None
        flags[extra] |= FLAGS["missing"]
    for col in (first, full):  # a name part, rarely; web forms require the surname
        extra = pd.notna(col) & (rng.random(n) < lv.missing / 4)
        col[extra] = None
        flags[extra] |= FLAGS["missing"]

    # ---- shuffle, ids, frames
    order = rng.permutation(n)
    prefix = {"crm_a": "A", "crm_b": "CB-", "crm_c": "L"}
    seq = np.zeros(n, dtype=np.int64)
    src_sh = source[order]
    for s in prefix:
        m = src_sh == s
        seq[m] = np.arange(1, int(m.sum()) + 1) + (10_000 if s == "crm_b" else 0)
    rid = np.array(
        [f"{prefix[s]}{q:08d}" for s, q in zip(src_sh, seq.tolist(), strict=True)], dtype=object
    )
    # object columns: letting pandas infer its string dtype costs ~10 s at 1M rows
    data = pd.DataFrame(
        {
            "record_id": rid,
            "source": src_sh,
            "first_name": first[order],
            "last_name": last[order],
            "full_name": full[order],
            "email": email[order],
            "phone": phone[order],
            "birth_date": birth[order],
            "postcode": postcode[order],
            "city": city[order],
            "loyalty_id": loyalty[order],
        },
        dtype=object,
    )
    person = pidx[order]
    truth = pd.DataFrame(
        {
            "record_id": rid,
            "person_id": np.array([f"P{x:07d}" for x in person.tolist()], dtype=object),
            "household_id": np.array(
                [f"H{x:07d}" for x in p["household"][person].tolist()], dtype=object
            ),
            "noise": flags[order],
        }
    )
    return data, truth


def write(
    data: pd.DataFrame,
    truth: pd.DataFrame,
    out: Path,
    stem: str,
    csv: bool,
    per_source_csv: bool = False,
) -> list[Path]:
    """Write Parquet (all columns typed as string) and optionally CSV; return the paths.

    ``per_source_csv`` also writes one CSV per source (``<stem>_crm_a.csv``...), the shape
    a pipeline that reads one export per CRM (like ccv's ``[[sources]]``) expects.
    """
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    paths = [out / f"{stem}.parquet", out / f"{stem}_truth.parquet"]
    pq.write_table(pa.Table.from_pandas(data, schema=schema, preserve_index=False), paths[0])
    pq.write_table(pa.Table.from_pandas(truth, preserve_index=False), paths[1])
    if csv:
        paths += [out / f"{stem}.csv", out / f"{stem}_truth.csv"]
        data.to_csv(paths[2], index=False)
        truth.to_csv(paths[3], index=False)
    if per_source_csv:
        for source, part in data.groupby("source", sort=True):
            paths.append(out / f"{stem}_{source}.csv")
            part.drop(columns="source").to_csv(paths[-1], index=False)
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--level", choices=list(LEVELS), default="medium")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--csv", action="store_true", help="also write CSV copies")
    ap.add_argument("--per-source-csv", action="store_true", help="also write one CSV per source")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    # millions of short-lived lists/tuples would trigger ever longer cyclic-GC passes
    # (~25 % of the run at 1M records); nothing here makes reference cycles
    gc.disable()
    data, truth = generate(args.records, args.level, args.seed)
    stem = f"identity_{args.level}_{args.records}_s{args.seed}"
    paths = write(data, truth, args.out, stem, args.csv, args.per_source_csv)
    persons = truth["person_id"].nunique()
    multi = int((truth["person_id"].value_counts() > 1).sum())
    print(
        f"{len(data):,} records, {persons:,} persons ({multi / persons:.1%} with 2+ records), "
        f"{(truth['noise'] != 0).mean():.1%} records corrupted, "
        f"{time.perf_counter() - t0:.1f}s"
    )
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
