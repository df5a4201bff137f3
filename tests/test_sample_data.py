"""Tests for the sample-data generator.

The generator is the yardstick for the whole pipeline (validation is scored
against ``planted_error``, identity resolution against ``person_id``), so these
tests pin down its contract: exact headers, determinism, one ground-truth row per
data row, and "only the planted rows are invalid".
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from ccv import sample_data as sd

FILES = [
    "crm_eshop_accounts.csv",
    "crm_store_loyalty.csv",
    "web_orders.jsonl",
    "store_orders.csv",
    "survey_responses.csv",
    "ground_truth.csv",
]
HEADERS = {
    "crm_eshop_accounts.csv": (
        "Account ID,First Name,Last Name,Email Address,Phone,Date of Birth,Gender,Street,City,"
        "Postcode,Country,Created At,Updated At,Newsletter Opt-in,SMS Opt-in,Referral Code"
    ),
    "crm_store_loyalty.csv": (
        "Card Number;Full Name;E-mail;Tel;DOB;Postcode;Town;Joined;Marketing Consent;Home Store"
    ),
    "store_orders.csv": "receipt_no,store_id,card_number,sold_at,type,gross,discount,net,currency",
    "survey_responses.csv": "response_id,email,crm_id,submitted_at,nps,csat,comment",
    "ground_truth.csv": "source,source_record_id,person_id,planted_error",
}
SOURCES = {  # ground-truth source -> (file, id column)
    "eshop_accounts": ("crm_eshop_accounts.csv", "Account ID"),
    "store_loyalty": ("crm_store_loyalty.csv", "Card Number"),
    "web_orders": ("web_orders.jsonl", "order_id"),
    "store_orders": ("store_orders.csv", "receipt_no"),
    "surveys": ("survey_responses.csv", "response_id"),
}
END = date(2026, 10, 31)
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


# --------------------------------------------------------------------------- helpers


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    delimiter = ";" if path.name == "crm_store_loyalty.csv" else ","
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("sample")
    return out, sd.generate(out)


@pytest.fixture(scope="module")
def data(sample) -> dict[str, list[dict]]:
    out, _ = sample
    return {name: read_rows(out / name) for name in FILES}


def _date(text: str, fmt: str) -> date | None:
    """Parsed date, or None when impossible."""
    try:
        return datetime.strptime(text, fmt).date()
    except ValueError:
        return None


def _amount(text) -> Decimal | None:
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _email_ok(text: str) -> bool:
    """Valid as delivered, or once an "@" typed as " at " is read as one (ingest repairs that)."""
    text = text.strip()
    return not text or bool(EMAIL.match(text) or EMAIL.match(text.replace(" at ", "@", 1)))


def _dated(text: str, fmt: str, errors: set[str]) -> None:
    if text:
        d = _date(text, fmt)
        if d is None or d > END:
            errors.add("impossible_date")


def _amounts(values: list, errors: set[str], expect_diff: bool = True) -> None:
    parsed = [_amount(v) for v in values]
    if any(v is None for v in parsed):
        errors.add("non_numeric_amount")
        return
    if any(v < 0 for v in parsed):
        errors.add("negative_amount")
    gross, discount, net = parsed
    if expect_diff and abs(gross - discount - net) > Decimal("0.005"):
        errors.add("inconsistent_amount")


def _ids(rows: list[dict], column: str) -> list[set[str]]:
    """missing_id / duplicate_id per row; the first occurrence of an id wins."""
    seen: set[str] = set()
    out = []
    for row in rows:
        rid = row[column]
        if not rid:
            out.append({"missing_id"})
        elif rid in seen:
            out.append({"duplicate_id"})
        else:
            seen.add(rid)
            out.append(set())
    return out


def violations(name: str, rows: list[dict]) -> list[set[str]]:
    """An independent, deliberately naive validator: the obvious rules only."""
    column = {f: c for f, c in SOURCES.values()}[name]
    found = _ids(rows, column)
    for row, errors in zip(rows, found, strict=True):
        if name == "crm_eshop_accounts.csv":
            if not row["Email Address"].strip() or not _email_ok(row["Email Address"]):
                errors.add("malformed_email")
            _dated(row["Date of Birth"], "%Y-%m-%d", errors)
            _dated(row["Created At"], "%Y-%m-%dT%H:%M:%S", errors)
            _dated(row["Updated At"], "%Y-%m-%dT%H:%M:%S", errors)
            if row["Account ID"] and not re.fullmatch(r"ES-\d{6}", row["Account ID"]):
                errors.add("bad_id")
        elif name == "crm_store_loyalty.csv":
            if not _email_ok(row["E-mail"]):
                errors.add("malformed_email")
            _dated(row["DOB"], "%d/%m/%Y", errors)
            _dated(row["Joined"], "%d/%m/%Y", errors)
            if not re.fullmatch(r"29\d{11}", row["Card Number"]):
                errors.add("bad_id")
        elif name == "web_orders.jsonl":
            if not row["email"] or not _email_ok(row["email"]):
                errors.add("malformed_email")
            _dated(row["placed_at"], "%Y-%m-%dT%H:%M:%SZ", errors)
            _amounts([row["subtotal"], row["discount"], row["total"]], errors)
            items = sum(_amount(i["unit_price"]) * i["qty"] for i in row["items"])
            if items != _amount(row["subtotal"]) or not 1 <= len(row["items"]) <= 3:
                errors.add("inconsistent_items")
        elif name == "store_orders.csv":
            _dated(row["sold_at"], "%d/%m/%Y %H:%M", errors)
            _amounts([row["gross"], row["discount"], row["net"]], errors)
            if row["type"] not in ("SALE", "RETURN", "VOID") or row["currency"] != "GBP":
                errors.add("bad_enum")
        elif name == "survey_responses.csv":
            if not _email_ok(row["email"]):
                errors.add("malformed_email")
            _dated(row["submitted_at"], "%Y-%m-%dT%H:%M:%SZ", errors)
            if not row["nps"].lstrip("-").isdigit() or not 0 <= int(row["nps"]) <= 10:
                errors.add("nps_out_of_range")
            if row["csat"] not in ("", "1", "2", "3", "4", "5"):
                errors.add("csat_out_of_range")
            if not row["email"] and not row["crm_id"]:
                errors.add("no_key")
    return found


def truth_by_source(data) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for row in data["ground_truth.csv"]:
        grouped[row["source"]].append(row)
    return grouped


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(tmp_path: Path, sample) -> None:
    out, _ = sample
    again = tmp_path / "again"
    sd.generate(again)
    for name in FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_different_seed_gives_different_files(tmp_path: Path, sample) -> None:
    out, _ = sample
    other = tmp_path / "other"
    sd.generate(other, seed=8)
    for name in FILES:
        assert (other / name).read_bytes() != (out / name).read_bytes(), name


# --------------------------------------------------------------------------- shape


def test_exact_headers(sample) -> None:
    out, _ = sample
    for name, header in HEADERS.items():
        with (out / name).open(encoding="utf-8") as fh:
            assert fh.readline().rstrip("\n") == header
    first = json.loads((out / "web_orders.jsonl").open(encoding="utf-8").readline())
    assert list(first) == [
        "order_id", "account_id", "email", "placed_at", "status", "currency",
        "subtotal", "discount", "total", "items",
    ]  # fmt: skip
    assert list(first["items"][0]) == ["sku", "category", "qty", "unit_price"]


def test_returned_counts_match_files(sample, data) -> None:
    _, counts = sample
    assert set(counts) == set(FILES)
    for name in FILES:
        assert counts[name] == len(data[name]), name


def test_one_truth_row_per_data_row_in_file_order(data) -> None:
    truth = truth_by_source(data)
    assert set(truth) == set(SOURCES)
    assert sum(len(v) for v in truth.values()) == len(data["ground_truth.csv"])
    for source, (name, column) in SOURCES.items():
        rows = data[name]
        assert len(truth[source]) == len(rows), source
        assert [t["source_record_id"] for t in truth[source]] == [r[column] or "" for r in rows]


def test_default_output_is_small(sample) -> None:
    out, _ = sample
    total = sum((out / name).stat().st_size for name in FILES)
    assert total < 1_500_000, total


# --------------------------------------------------------------------------- validity


def test_every_error_code_is_planted(data) -> None:
    codes = Counter(r["planted_error"] for r in data["ground_truth.csv"] if r["planted_error"])
    assert set(codes) == set(sd.ERROR_CODES)
    assert all(5 <= n <= 15 for n in codes.values()), codes


def test_only_planted_rows_are_invalid(data) -> None:
    truth = truth_by_source(data)
    for source, (name, _) in SOURCES.items():
        found_per_row = violations(name, data[name])
        for i, (found, t) in enumerate(zip(found_per_row, truth[source], strict=True)):
            planted = t["planted_error"]
            if planted:
                assert planted in found, (name, i, planted, found)
            else:
                assert not found, (name, i, found, data[name][i])


def test_dates_stay_in_the_three_year_window(data) -> None:
    stamps = [o["placed_at"][:10] for o in data["web_orders.jsonl"]]
    stamps += [_date(r["sold_at"][:10], "%d/%m/%Y").isoformat() for r in data["store_orders.csv"]]
    real = sorted(s for s in stamps if _date(s, "%Y-%m-%d"))
    assert real[0] >= "2023-10-01"
    assert real[-1] <= "2026-10-31"


def test_phones_are_valid_uk_mobiles(data) -> None:
    phonenumbers = pytest.importorskip("phonenumbers")
    phones = [r["Phone"] for r in data["crm_eshop_accounts.csv"] if r["Phone"]]
    phones += [r["Tel"] for r in data["crm_store_loyalty.csv"] if r["Tel"]]
    for phone in phones:
        # 0044 / bare 44 are what people type; phonenumbers wants an explicit "+".
        text = "+" + phone if phone.startswith("44") else phone.replace("0044", "+44", 1)
        parsed = phonenumbers.parse(text, "GB")
        assert phonenumbers.is_valid_number(parsed), phone
        assert phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE, phone


# --------------------------------------------------------------------------- realism


def test_many_persons_in_both_crms(data) -> None:
    truth = truth_by_source(data)
    eshop = {t["person_id"] for t in truth["eshop_accounts"] if not t["planted_error"]}
    loyalty = {t["person_id"] for t in truth["store_loyalty"]}
    assert len(eshop & loyalty) >= 200
    assert 0.3 <= len(eshop & loyalty) / len(eshop) <= 0.5


def test_duplicates_within_each_crm(data) -> None:
    truth = truth_by_source(data)
    for source in ("eshop_accounts", "store_loyalty"):
        per_person = Counter(t["person_id"] for t in truth[source] if not t["planted_error"])
        assert sum(1 for n in per_person.values() if n > 1) >= 10, source


def test_hard_cases_for_identity_resolution(data) -> None:
    eshop = data["crm_eshop_accounts.csv"]
    truth = truth_by_source(data)["eshop_accounts"]
    # different people, same name
    by_name = defaultdict(set)
    for row, t in zip(eshop, truth, strict=True):
        by_name[(row["First Name"].strip().lower(), row["Last Name"].strip().lower())].add(
            t["person_id"]
        )
    assert sum(1 for pids in by_name.values() if len(pids) > 1) >= 5
    # different people, one e-mail address (households)
    by_email = defaultdict(set)
    for name, column, source in (
        ("crm_eshop_accounts.csv", "Email Address", "eshop_accounts"),
        ("crm_store_loyalty.csv", "E-mail", "store_loyalty"),
    ):
        for row, t in zip(data[name], truth_by_source(data)[source], strict=True):
            if row[column]:
                by_email[row[column].strip().lower()].add(t["person_id"])
    assert any(len(pids) > 1 for pids in by_email.values())
    # accents, and the same accented name without its accent
    names = {row["First Name"].strip() for row in eshop}
    names |= {w for row in data["crm_store_loyalty.csv"] for w in row["Full Name"].split()}
    assert {"José", "Zoë", "Chloé", "Siobhán", "Łukasz", "Renée", "François"} & names
    assert any(n != n.encode("ascii", "ignore").decode() for n in names)
    assert {"Bob", "Liz", "Bill", "Kate", "Jim", "Tom"} & names


def test_channel_mix_is_realistic(data) -> None:
    web = data["web_orders.jsonl"]
    guests = sum(o["account_id"] is None for o in web) / len(web)
    assert 0.12 <= guests <= 0.3
    statuses = Counter(o["status"] for o in web)
    assert set(statuses) == {"completed", "cancelled", "refunded"}
    store = data["store_orders.csv"]
    anonymous = sum(not r["card_number"] for r in store) / len(store)
    assert 0.25 <= anonymous <= 0.45
    assert {"SALE", "RETURN", "VOID"} == {r["type"] for r in store}
    # surveys: roughly one per three buyers, comments exercise CSV quoting
    comments = [r["comment"] for r in data["survey_responses.csv"]]
    assert any("," in c for c in comments) and any('"' in c for c in comments)
    assert any("\n" in c for c in comments)


def test_rejects_tiny_populations(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sd.generate(tmp_path, persons=10)


def test_small_population_still_plants_everything(tmp_path: Path) -> None:
    counts = sd.generate(tmp_path, seed=3, persons=60)
    assert counts["ground_truth.csv"] == sum(
        v for k, v in counts.items() if k != "ground_truth.csv"
    )
    truth = read_rows(tmp_path / "ground_truth.csv")
    assert {r["planted_error"] for r in truth} - {""} == set(sd.ERROR_CODES)


def test_volume_knobs_scale_orders_and_surveys_per_person(tmp_path: Path) -> None:
    """Benchmarks ask for issue 8's volume: ~10 orders and ~1/3 survey answer per person."""
    persons = 2000
    counts = sd.generate(
        tmp_path, seed=3, persons=persons, orders_per_person=10, surveys_per_person=1 / 3
    )
    orders = counts[sd.WEB_FILE] + counts[sd.STORE_FILE]
    assert 9.0 * persons <= orders <= 11.0 * persons
    assert 0.28 * persons <= counts[sd.SURVEY_FILE] <= 0.39 * persons
    default = sd.generate(tmp_path / "default", seed=3, persons=persons)
    assert default[sd.WEB_FILE] + default[sd.STORE_FILE] < 0.7 * orders


def test_every_person_gets_a_mailbox_of_their_own() -> None:
    """Two people never get addresses that reach one inbox: at gmail.com dots and +tags do not
    count, so "emma.smith20@" and "emmasmith20@" would be one person's mailbox (at a million
    customers such pairs made the matcher's 'mistakes' on the generated data)."""
    import random

    from ccv.sample_data import _email, _mailbox

    assert _mailbox("Emma.Smith20+shop@gmail.com") == "emmasmith20@gmail.com"
    assert _mailbox("emma.smith@mail.co.uk") == "emma.smith@mail.co.uk"
    rng, used = random.Random(1), set()
    boxes = [_mailbox(_email(rng, "Emma", "Smith", 725000, used)) for _ in range(3000)]
    assert len(set(boxes)) == len(boxes)
