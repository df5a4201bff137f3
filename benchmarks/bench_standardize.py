"""Benchmark of the standardisers on 1M rows: synthetic (~300k distinct values per field), or
a file written by `benchmarks/identity_data.py` (the identity-resolution benchmark data).

Run by hand; prints wall and CPU seconds per step, peak RSS and the load average:

    .venv/bin/python benchmarks/bench_standardize.py
    .venv/bin/python benchmarks/bench_standardize.py \
        --parquet benchmarks/out/identity_medium_1000000_s1.parquet
"""

import argparse
import os
import resource
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


def synthetic() -> pd.DataFrame:
    """1M rows drawn from the distinct values above."""
    return pd.DataFrame(
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


ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument(
    "--parquet", help="identity_data.py output to standardise instead of synthetic rows"
)
args = ap.parse_args()
df = pd.read_parquet(args.parquet) if args.parquet else synthetic()
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(name, fn):
    """Run ``fn``; print wall and CPU seconds (CPU is less disturbed by other load)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{name:22s} wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    return result


print({c: df[c].nunique() for c in df.columns})
print(f"{len(df):,} rows; load average {os.getloadavg()}")
out = timed("standardize_customers", lambda: standardize_customers(df))
print(out.filter(like="std_").notna().mean().round(3).to_dict())
print(out.head(3).T)
for name, fn in [
    ("fold first", lambda: S.fold(S.blank_placeholders(df.first_name))),
    ("fold last", lambda: S.fold(S.blank_placeholders(df.last_name))),
    ("split full_name", lambda: S.split_full_name(df.full_name)),
    ("clean_text first", lambda: S.clean_text(df.first_name)),
    ("email", lambda: S.normalize_email(df.email)),
    ("emailkey", lambda: S.email_match_key(out.std_email)),
    ("phone", lambda: S.normalize_phone(df.phone)),
    ("postcode", lambda: S.normalize_postcode(df.postcode)),
    ("loyalty", lambda: S.normalize_loyalty_id(df.loyalty_id)),
    ("date", lambda: S.parse_date(df.birth_date)),
    ("phonetic last", lambda: S.phonetic_key(out.std_last_name)),
    ("nickname", lambda: S.nickname_key(out.std_first_name)),
    ("factorize email", lambda: pd.factorize(df.email)),
]:
    timed(name, fn)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peak RSS {peak:.0f} MB (after loading the input: {rss_before:.0f} MB)")
print(f"load average {os.getloadavg()}")
