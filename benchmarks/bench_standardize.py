"""Benchmark of the standardisers on 1M synthetic rows (~300k distinct values per field).

Run by hand: `.venv/bin/python benchmarks/bench_standardize.py`; prints seconds per step.
"""

import time

import numpy as np
import pandas as pd

import ccv.identity.standardize as S
from ccv.identity.standardize import standardize_customers

rng = np.random.default_rng(0)
N, U = 1_000_000, 300_000
firsts = np.array(
    [
        "John",
        "Jon",
        "Bob",
        "Robert",
        "Liz",
        "Elizabeth",
        "Zoë",
        "Mary-Jane",
        "Bill",
        "William",
        "Sam",
        "Ann",
        "Jane",
        "Mohammed",
        "Priya",
        "Siobhán",
        "Wei",
        "Olu",
    ]
)
syl = np.array(
    [
        "ba",
        "ker",
        "son",
        "mi",
        "ll",
        "er",
        "o'",
        "wat",
        "ts",
        "grif",
        "fith",
        "van ",
        "der ",
        "ham",
        "ley",
        "ç",
        "ø",
        "ton",
        "ford",
        "brid",
        "ge",
    ]
)


def words(n, k):
    idx = rng.integers(0, len(syl), size=(n, k))
    return pd.Series(["".join(r).title() for r in syl[idx]])


first_u = pd.Series([f + s for f in firsts for s in ["", "a", "e", "ie", "o", "y"]] * 1)
first_u = pd.concat([first_u, words(5000, 2)], ignore_index=True)
last_u = words(U, 5)
digits = rng.integers(0, 10**6, size=U)
mob = rng.choice(["740", "791", "770", "787", "752", "745"], size=U)
shapes = rng.integers(0, 7, size=U)


def phone(i):
    a = "7" + mob[i][1:] + str(digits[i] % 10)
    b = f"{digits[i]:06d}"
    return [
        "+44 " + a + " " + b,
        "0" + a + b,
        f"(0{a}) {b[:3]}-{b[3:]}",
        "0044 " + a + " " + b,
        "44" + a + b,
        "+44 (0)" + a + " " + b,
        f"020 7{b[:3]} {b[3:]}0",
    ][shapes[i]]


phone_u = pd.Series([phone(i) for i in range(U)])
DOMAINS = ["gmail.com", "Hotmail.co.uk", "x.org", "bad"]
email_u = pd.Series(
    [
        f"{last.lower().replace(' ', '').replace(chr(39), '')}{i}@{d}"
        for i, (last, d) in enumerate(zip(last_u, rng.choice(DOMAINS, size=U), strict=True))
    ]
)
pc_u = pd.Series(
    [
        f"{a}{n} {m}{b}"
        for a, n, m, b in zip(
            rng.choice(["sw1a", "M", "EC2", "b", "LS", "n", "e", "se", "nw"], U),
            rng.integers(1, 99, U),
            rng.integers(0, 10, U),
            ["".join(x) for x in rng.choice(list("ABDEFGHJLNPQRSTUWXYZ"), (U, 2))],
            strict=False,
        )
    ]
)
loy_u = pd.Series([f"2900{x:09d}" for x in rng.integers(0, 10**9, U)])
dates_u = pd.Series(pd.date_range("1940-01-01", periods=20000, freq="D").strftime("%d/%m/%Y"))


def pick(u, n=N, null=0.05):
    s = u.iloc[rng.integers(0, len(u), n)].reset_index(drop=True)
    return s.mask(rng.random(n) < null)


df = pd.DataFrame(
    {
        "first_name": pick(first_u),
        "last_name": pick(last_u),
        "full_name": pick(first_u + " " + last_u.iloc[: len(first_u)].values, null=0.9),
        "email": pick(email_u),
        "phone": pick(phone_u),
        "birth_date": pick(dates_u),
        "postcode": pick(pc_u),
        "city": pick(
            pd.Series(
                ["London", "Manchester", "St. Albans", "Milton Keynes", *list(words(2000, 2))]
            )
        ),
        "loyalty_id": pick(loy_u),
    }
).astype("str")
print({c: df[c].nunique() for c in df.columns})
t = time.perf_counter()
out = standardize_customers(df)
print(f"standardize_customers: {len(df):,} rows in {time.perf_counter() - t:.2f} s")
print(out.filter(like="std_").notna().mean().round(3).to_dict())
print(out.head(3).T)
for name, fn in [
    ("fold first", lambda: S.fold(S.blank_placeholders(df.first_name))),
    ("fold last", lambda: S.fold(S.blank_placeholders(df.last_name))),
    ("email", lambda: S.normalize_email(df.email)),
    ("phone", lambda: S.normalize_phone(df.phone)),
    ("postcode", lambda: S.normalize_postcode(df.postcode)),
    ("loyalty", lambda: S.normalize_loyalty_id(df.loyalty_id)),
    ("date", lambda: S.parse_date(df.birth_date)),
    ("phonetic last", lambda: S.phonetic_key(out.std_last_name)),
    ("emailkey", lambda: S.email_match_key(out.std_email)),
    ("factorize", lambda: pd.factorize(df.email)),
    ("nickname", lambda: S.nickname_key(out.std_first_name)),
]:
    t = time.perf_counter()
    fn()
    print(f"{name:15s} {time.perf_counter() - t:.2f}")
