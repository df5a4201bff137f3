"""`ccv resolve`: identity resolution on any customer file(s), outside the nightly warehouse.

Reads CSV or Parquet through DuckDB (delimiter and quoting sniffed), maps columns to canonical
fields — from `--map FIELD=COLUMN` or, for the fields not given, by recognising common column
names ("E-mail", "Surname", "DOB", "Post Code", …) — then runs the same standardise → link →
cluster code as the nightly run and writes `record_id, source, customer_id` as Parquet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from ccv.config import IdentityConfig
from ccv.identity.resolve import link_and_cluster, standardize
from ccv.identity.stable_ids import mint_ids

# Canonical field -> column names that mean it, normalised (lower case, letters and digits only).
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "givenname", "forename", "fname"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname"),
    "full_name": ("fullname", "name", "customername", "contactname"),
    "email": ("email", "emailaddress", "mail", "emailaddr"),
    "phone": ("phone", "phonenumber", "telephone", "tel", "mobile", "mobilephone", "cell"),
    "birth_date": ("dob", "dateofbirth", "birthdate", "birthday", "born"),
    "postcode": ("postcode", "postalcode", "zip", "zipcode", "postcodezip"),
    "city": ("city", "town"),
    "country": ("country", "countrycode"),
    "address_line": ("address", "street", "addressline1", "address1", "streetaddress"),
    "loyalty_id": ("loyaltyid", "cardnumber", "loyaltycard", "loyaltynumber", "memberid"),
}


class ResolveInputError(ValueError):
    """An input or mapping that cannot be used; the message says which and why."""


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def guess_mapping(columns: list[str], given: dict[str, str] | None = None) -> dict[str, str]:
    """Map canonical fields to columns: the given pairs first, then recognised column names.

    >>> guess_mapping(["Cust ID", "E-mail", "Surname", "First Name", "DOB"])
    {'first_name': 'First Name', 'last_name': 'Surname', 'email': 'E-mail', 'birth_date': 'DOB'}
    """
    mapping = dict(given or {})
    taken = set(mapping.values())
    by_norm = {_norm(c): c for c in columns}
    for field, names in FIELD_SYNONYMS.items():
        if field in mapping:
            continue
        for name in names:
            column = by_norm.get(name)
            if column and column not in taken:
                mapping[field] = column
                taken.add(column)
                break
    return mapping


def read_input(path: Path) -> pd.DataFrame:
    """All columns of a CSV or Parquet file, as text."""
    if not path.is_file():
        raise ResolveInputError(f"{path}: no such file")
    con = duckdb.connect()
    quoted = str(path).replace("'", "''")
    if path.suffix.lower() == ".parquet":
        source = f"read_parquet('{quoted}')"
        columns = [row[0] for row in con.execute(f"describe select * from {source}").fetchall()]
        casts = ", ".join(f'cast("{c}" as varchar) as "{c}"' for c in columns)
        return con.execute(f"select {casts} from {source}").df()
    return con.execute(
        f"select * from read_csv('{quoted}', all_varchar = true, sample_size = -1)"
    ).df()


def resolve_files(
    inputs: list[Path],
    id_columns: list[str],
    mapping: dict[str, str],
    identity: IdentityConfig,
    progress: Callable[[str], None] = lambda _: None,
) -> pd.DataFrame:
    """Resolve the records of every input together; return record_id, source, customer_id.

    `id_columns[i]` names the id column of `inputs[i]`.
    """
    frames, used = [], set()
    for path, id_column in zip(inputs, id_columns, strict=True):
        progress(f"reading {path.name}")
        raw = read_input(path)
        if id_column not in raw.columns:
            raise ResolveInputError(
                f"{path}: no id column '{id_column}' (columns: {', '.join(raw.columns)})"
            )
        # a --map pair applies to the inputs that have its column
        given = {f: c for f, c in mapping.items() if c in raw.columns}
        used |= set(given.values())
        fields = guess_mapping(list(raw.columns), given)
        frame = pd.DataFrame({field: raw[column] for field, column in fields.items()})
        frame["source"] = path.stem
        frame["source_record_id"] = raw[id_column].astype(str)
        frames.append(frame)
    unused = {f: c for f, c in mapping.items() if c not in used}
    if unused:
        raise ResolveInputError(f"mapped column(s) found in no input: {unused}")
    records = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(
        {
            "record_id": records["source_record_id"],
            "source": records["source"],
            "customer_id": resolve_frame(records, identity, progress),
        }
    )


def resolve_frame(
    records: pd.DataFrame,
    identity: IdentityConfig,
    progress: Callable[[str], None] = lambda _: None,
) -> pd.Series:
    """A customer id per row of `records` (canonical columns + `source`, `source_record_id`).

    Ids are minted from each cluster's smallest record key, so the same input gives the same ids.
    """
    records = records.reset_index(drop=True).assign(
        record_kind="customer", ref_source=None, ref_record_id=None
    )
    progress(f"standardising {len(records):,} records")
    std = standardize(records, identity)
    progress("blocking, comparing, scoring and clustering")
    labels, _, _ = link_and_cluster(std, identity)
    keys = records["source"] + ":" + records["source_record_id"]
    anchors = keys.groupby(labels).min()
    ids = pd.Series(mint_ids(anchors.tolist(), set()), index=anchors.index)
    return pd.Series(labels).map(ids)


def write_parquet(frame: pd.DataFrame, out: Path) -> None:
    """Write atomically: a half-written output never replaces a good one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)
