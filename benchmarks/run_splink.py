"""Resolve a ``benchmarks/identity_data.py`` file with Splink, as a reference point for ccv.

Why: issue 4 asks how ccv's resolver compares with a well-known open-source linker on the
same held-out data.  Splink (probabilistic Fellegi-Sunter, DuckDB backend) is that linker.
This script runs in its OWN virtualenv, because Splink pins its own duckdb and must not
touch the project's pinned environment::

    python3 -m venv /tmp/splinkenv && /tmp/splinkenv/bin/pip install splink
    /tmp/splinkenv/bin/python benchmarks/run_splink.py \\
        --input benchmarks/out/identity_medium_100000_s1.parquet \\
        --out benchmarks/out/splink_medium_100000_s1.parquet
    .venv/bin/python benchmarks/identity_score.py \\
        --truth benchmarks/out/identity_medium_100000_s1_truth.parquet \\
        --pred benchmarks/out/splink_medium_100000_s1.parquet

It needs only splink and duckdb (written against Splink 5.0's API: ``DuckDBAPI.register``,
``linker.training.*``, ``linker.inference.predict``, ``linker.clustering.*``).

To be fair to Splink the setup follows its documentation and tutorials rather than a
deliberately naive one:

* Data preparation is the user's job in Splink, so the script does the cleaning its
  tutorials do, in DuckDB SQL: Unicode clean-up (NFC, zero-width/BOM/soft hyphen and
  combining marks removed, fullwidth folded, accents stripped, NBSP to space), lower case,
  "LAST, Title First" and "First Last" full names split and titles removed, birth dates
  parsed with each source's format, phones reduced to national digits (Excel's
  ``4.47E+11`` is lost information and becomes null), postcodes upper-cased with one
  space, loyalty ids without leading zeros; set to null: masked e-mails (``rob***@``),
  e-mails and phones shared by more than 10 records (placeholders such as
  ``noemail@noemail.com``, ``00000000000``) and birth dates before 1901 (``1900-01-01``) -
  what profiling with Splink's ``profile_columns`` would reveal.  No nickname table:
  Splink has none built in.
* Comparisons are Splink's library ones: ``NameComparison`` for first and last name and
  ``ExactMatch`` for city and loyalty id (all with term-frequency adjustments),
  ``DateOfBirthComparison``, ``EmailComparison``, ``PostcodeComparison``, ``ExactMatch``
  for phone.
* Blocking for prediction: exact e-mail, phone, loyalty id, (dob, last name),
  (postcode, first name), (first name, dob), (last name, postcode).
* Training as in the tutorials: lambda from deterministic rules (recall 0.7), u by random
  sampling (``--max-pairs``, default 1e7, seeded), m by EM on two blocking rules
  ((first name, last name) and (dob)) on all their pairs (Splink's default; ``--em-max-pairs``
  caps them, which large inputs need); then predict at match probability >= 0.9 and
  connected-components clustering at the same threshold.

Prints wall time per stage and peak memory (``ru_maxrss`` of this process + children,
reported in MiB; stage progress also goes to stderr, so a run stopped by ``timeout`` shows
how far it got), and writes ``record_id, cluster_id`` to ``--out`` as Parquet.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import duckdb
import splink
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

# fullwidth ASCII block U+FF01..U+FF5E -> ASCII 0x21..0x7E
FULLWIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F))
ASCII = "".join(chr(c) for c in range(0x21, 0x7F))
ASCII_SQL = ASCII.replace("'", "''")  # as a SQL string literal
INVISIBLE = "[\u200b\u200c\u200d\u2060\ufeff\u00ad\u0300-\u036f]"
TITLES = r"^(mr|mrs|ms|miss|mx|dr|prof|sir)\.?\s+"
DATE_FORMATS = {"crm_a": "%Y-%m-%d", "crm_b": "%d/%m/%Y", "crm_c": "%d-%b-%Y"}
MAX_SHARED = 10  # a value held by more records than this is a placeholder, not an identifier


def _clean_sql(path: str) -> str:
    """One SELECT turning the raw file into the columns Splink compares."""

    def txt(col: str) -> str:
        return (
            f"nullif(trim(regexp_replace(lower(strip_accents(nfc_normalize(translate("
            f"regexp_replace({col}, '{INVISIBLE}', '', 'g'), '{FULLWIDTH}', '{ASCII_SQL}')))), "
            f"'[\\s\u00a0]+', ' ', 'g')), '')"
        )

    dob_cases = " ".join(
        f"when source = '{s}' then try_strptime({txt('birth_date')}, '{f}')::date"
        for s, f in DATE_FORMATS.items()
    )
    return f"""
    with raw as (select * from read_parquet('{path}')),
    t as (
        select record_id, source,
            {txt("first_name")} as fn, {txt("last_name")} as ln, {txt("full_name")} as nm,
            {txt("email")} as em, {txt("phone")} as ph, case {dob_cases} end as dob,
            {txt("postcode")} as pc, {txt("city")} as city, {txt("loyalty_id")} as loy
        from raw
    ),
    names as (
        select *,
            case when nm like '%,%' then trim(split_part(nm, ',', 2))
                 when nm is not null then split_part(nm, ' ', 1) end as full_first,
            case when nm like '%,%' then trim(split_part(nm, ',', 1))
                 when nm is not null then
                     nullif(trim(substr(nm, length(split_part(nm, ' ', 1)) + 1)), '')
                 end as full_last,
            regexp_replace(ph, '[^0-9]', '', 'g') as digits
        from t
    ),
    c as (
        select record_id,
            nullif(regexp_replace(coalesce(fn, full_first), '{TITLES}', ''), '') as first_name,
            nullif(regexp_replace(coalesce(ln, full_last), '{TITLES}', ''), '') as last_name,
            case when em like '%*%' or em not like '%_@_%' then null else em end as email,
            case when ph like '%e+%' then null
                 when digits like '0044%' then '0' || substr(digits, 5)
                 when digits like '44%' and length(digits) = 12 then '0' || substr(digits, 3)
                 when length(digits) = 10 and digits not like '0%' then '0' || digits
                 else digits end as phone0,
            case when dob > date '1901-01-01' then dob end as dob,
            nullif(regexp_replace(upper(pc), '[^A-Z0-9]', '', 'g'), '') as pc0,
            city,
            nullif(ltrim(regexp_replace(loy, '[^0-9a-z]', '', 'g'), '0'), '') as loyalty_id
        from names
    ),
    f as (
        select record_id, first_name, last_name, email, dob, city, loyalty_id,
            case when length(phone0) between 10 and 11 and phone0 not like '00000%'
                 then phone0 end as phone,
            case when length(pc0) between 5 and 7
                 then substr(pc0, 1, length(pc0) - 3) || ' ' || right(pc0, 3) end as postcode
        from c
    )
    select record_id, first_name, last_name, dob,
        case when count(*) over (partition by email) > {MAX_SHARED} then null
             else email end as email,
        case when count(*) over (partition by phone) > {MAX_SHARED} then null
             else phone end as phone,
        postcode, city, loyalty_id
    from f
    """


def _maxrss_mib() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (self_ + kids) / 1024


def settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.EmailComparison("email"),
            cl.PostcodeComparison("postcode"),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.ExactMatch("phone"),
            cl.ExactMatch("loyalty_id").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            block_on("loyalty_id"),
            block_on("dob", "last_name"),
            block_on("postcode", "first_name"),
            block_on("first_name", "dob"),
            block_on("last_name", "postcode"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def run(
    input_path: Path,
    out: Path,
    threshold: float,
    max_pairs: float,
    threads: int | None,
    em_max_pairs: float | None = None,
) -> dict:
    stages: dict[str, float] = {}
    t0 = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stages[name] = round(now - last, 2)
        last = now
        # progress on stderr, so a run stopped by a time limit still shows how far it got
        print(f"{name} done after {now - t0:.1f}s, peak {_maxrss_mib():.0f} MiB", file=sys.stderr)

    con = duckdb.connect()
    if threads:
        con.execute(f"set threads = {int(threads)}")
    con.execute(f"create table clean as {_clean_sql(str(input_path))}")
    records = con.execute("select count(*) from clean").fetchall()[0][0]
    lap("prepare")

    db_api = DuckDBAPI(connection=con)
    linker = Linker(db_api.register("clean"), settings(), log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "dob"), block_on("email")], recall=0.7
    )
    lap("train_lambda")
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=1)
    lap("train_u")
    for rule in (block_on("first_name", "last_name"), block_on("dob")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, max_pairs=em_max_pairs
        )
    lap("train_m_em")

    pairs = linker.inference.predict(threshold_match_probability=threshold)
    n_pairs = con.execute(f"select count(*) from {pairs.physical_name}").fetchall()[0][0]
    lap("predict")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pairs, threshold_match_probability=threshold
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"copy (select record_id, cluster_id from {clusters.physical_name}) "
        f"to '{out}' (format parquet)"
    )
    n_clusters = con.execute(
        f"select count(distinct cluster_id) from {clusters.physical_name}"
    ).fetchall()[0][0]
    lap("cluster")
    return {
        "splink": splink.__version__,
        "duckdb": duckdb.__version__,
        "records": records,
        "pairs_above_threshold": n_pairs,
        "clusters": n_clusters,
        "threshold": threshold,
        "em_max_pairs": em_max_pairs,
        "wall_s": round(time.perf_counter() - t0, 2),
        "stages_s": stages,
        "peak_rss_mib": round(_maxrss_mib(), 1),
        "out": str(out),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Cluster an identity benchmark file with Splink.")
    ap.add_argument("--input", type=Path, required=True, help="identity_data.py Parquet")
    ap.add_argument("--out", type=Path, required=True, help="Parquet: record_id, cluster_id")
    ap.add_argument("--threshold", type=float, default=0.9, help="match probability")
    ap.add_argument("--max-pairs", type=float, default=1e7, help="u-estimation sample")
    ap.add_argument(
        "--em-max-pairs",
        type=float,
        default=None,
        help="cap on blocked pairs per EM session (Splink default: no cap); for 1M records",
    )
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(
        args.input, args.out, args.threshold, args.max_pairs, args.threads, args.em_max_pairs
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<22} {value}")


if __name__ == "__main__":
    main()
