"""Marketing exports: filter validation, consent, suppression, contact cap, hashing, logging.

The warehouses here are built directly (the tables an export reads, published with
`versions.publish`), so these tests do not depend on the rest of the pipeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccv.activation import Activation, ExportError, FilterRejected, export_segment
from ccv.activation.filters import validate_filter
from ccv.activation.flow import export_flow
from ccv.activation.store import open_store
from ccv.privacy.hashing import hash_email, hash_phone
from ccv.privacy.suppression import suppress
from ccv.warehouse import versions

NOW = dt.datetime(2026, 11, 1, 9, 0)
CHANNELS = ("email", "sms", "postal", "ads")


@dataclass(eq=False)
class Person:
    """One customer of a test warehouse (one CRM record, golden record = that record)."""

    n: int
    first_name: str = "Ann"
    last_name: str = "Lee"
    phone: str | None = "07911 123456"  # raw spelling; the golden phone is its E.164
    address_line: str | None = "1 High St"
    postcode: str | None = "LS1 1AA"
    rfm_segment: str = "Champions"
    email: str | None = None
    birth_date: dt.date = dt.date(1980, 5, 17)
    extra_emails: list[str] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        return f"C{self.n:016x}"

    @property
    def record_id(self) -> str:
        return f"ES-{self.n:06d}"

    @property
    def mail(self) -> str:
        return self.email or f"person{self.n}@example.org"

    @property
    def e164(self) -> str | None:
        if self.phone is None:
            return None
        digits = "".join(ch for ch in self.phone if ch.isdigit())
        return "+44" + digits[1:] if digits.startswith("0") else "+" + digits


def uk_mobile(n: int) -> str:
    """A valid UK mobile number (07 + 9 digits), national spelling."""
    return f"07911 {100000 + n:06d}"


def consent_row(person: Person, channel: str, opt_in: bool, at, k: int, by: str = "record"):
    """A stg_consents row naming the person by CRM record or only by email."""
    return {
        "consent_key": f"consents:K{k}",
        "consent_id": f"K{k}",
        "source": "consents",
        "customer_source": "eshop" if by == "record" else None,
        "customer_record_id": person.record_id if by == "record" else None,
        "loyalty_id": None,
        "email": person.mail if by == "email" else None,
        "phone": None,
        "channel": channel,
        "method": "test",
        "is_opt_in": opt_in,
        "consented_at": at,
        "source_file": "consents.csv",
        "row_number": k,
    }


def _create(con, name: str, rows: list[dict], ddl: str) -> None:
    con.execute(f"create table {name} ({ddl})")
    if rows:
        columns = list(rows[0])
        con.executemany(
            f"insert into {name} ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})",
            [[r[c] for c in columns] for r in rows],
        )


def write_warehouse(path: Path, people: list[Person], consents: list[dict]) -> None:
    """Create the tables that exports, erasure and subject access read."""
    con = duckdb.connect(str(path))
    golden = [
        {
            "customer_id": p.customer_id,
            "loyalty_id": None,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "full_name": f"{p.first_name} {p.last_name}",
            "birth_date": p.birth_date,
            "gender": "F",
            "email": p.mail,
            "phone": p.e164,
            "address_line": p.address_line,
            "city": "Leeds",
            "postcode": p.postcode,
            "country": "GB",
        }
        for p in people
    ]
    person_ddl = (
        "customer_id varchar, loyalty_id varchar, first_name varchar, last_name varchar, "
        "full_name varchar, birth_date date, gender varchar, email varchar, phone varchar, "
        "address_line varchar, city varchar, postcode varchar, country varchar"
    )
    _create(con, "customers", golden, person_ddl)
    marts = [
        {
            **g,
            "lifetime_orders": p.n % 5,
            "rfm_segment": p.rfm_segment,
            "loyalty_cell": "true_loyalty",
            "loyalty_stage": "loyal",
            "is_lapsed": False,
        }
        for g, p in zip(golden, people, strict=True)
    ]
    _create(
        con,
        "customer_360",
        marts,
        person_ddl + ", lifetime_orders integer, rfm_segment varchar, loyalty_cell varchar, "
        "loyalty_stage varchar, is_lapsed boolean",
    )
    _create(
        con,
        "customer_xref",
        [
            {
                "source": "eshop",
                "source_record_id": p.record_id,
                "record_kind": "customer",
                "customer_id": p.customer_id,
                "match_rule": "self",
                "run_id": "r1",
            }
            for p in people
        ]
        + [
            {
                "source": "web",
                "source_record_id": f"O{p.n}",
                "record_kind": "order",
                "customer_id": p.customer_id,
                "match_rule": "email",
                "run_id": "r1",
            }
            for p in people
        ],
        "source varchar, source_record_id varchar, record_kind varchar, customer_id varchar, "
        "match_rule varchar, run_id varchar",
    )
    identity = [
        {
            "record_kind": "customer",
            "source": "eshop",
            "source_record_id": p.record_id,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "email": p.mail,
            "phone": p.e164,
            "loyalty_id": None,
        }
        for p in people
    ] + [
        {
            "record_kind": "order",
            "source": "web",
            "source_record_id": f"O{p.n}",
            "first_name": None,
            "last_name": None,
            "email": extra,
            "phone": None,
            "loyalty_id": None,
        }
        for p in people
        for extra in (p.extra_emails or [p.mail])
    ]
    _create(
        con,
        "identity_records",
        identity,
        "record_kind varchar, source varchar, source_record_id varchar, first_name varchar, "
        "last_name varchar, email varchar, phone varchar, loyalty_id varchar",
    )
    raw = [
        {
            "source": "eshop",
            "source_record_id": p.record_id,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "email": p.mail.upper(),
            "phone": p.phone,
            "address_line": p.address_line,
            "postcode": p.postcode,
            "extra": json.dumps({"Nickname": p.first_name + "y"}),
        }
        for p in people
    ]
    raw_ddl = (
        "source varchar, source_record_id varchar, first_name varchar, last_name varchar, "
        "email varchar, phone varchar, address_line varchar, postcode varchar, extra json"
    )
    _create(con, "raw_customers", raw, raw_ddl)
    _create(con, "stg_customers", raw, raw_ddl)
    _create(
        con,
        "raw_orders",
        [
            {
                "source": "web",
                "order_id": f"O{p.n}",
                "customer_record_id": p.record_id,
                "email": p.mail,
                "net_amount": 10.0,
            }
            for p in people
        ],
        "source varchar, order_id varchar, customer_record_id varchar, email varchar, "
        "net_amount double",
    )
    _create(
        con,
        "orders",
        [
            {
                "order_key": f"web:O{p.n}",
                "order_id": f"O{p.n}",
                "source": "web",
                "customer_id": p.customer_id,
                "net_amount": 10.0,
            }
            for p in people
        ],
        "order_key varchar, order_id varchar, source varchar, customer_id varchar, "
        "net_amount double",
    )
    _create(
        con,
        "customer_attributes",
        [
            {
                "customer_id": p.customer_id,
                "attribute": a,
                "value": v,
                "source": "eshop",
                "source_record_id": p.record_id,
            }
            for p in people
            for a, v in (
                ("first_name", p.first_name),
                ("last_name", p.last_name),
                ("email", p.mail),
            )
        ],
        "customer_id varchar, attribute varchar, value varchar, source varchar, "
        "source_record_id varchar",
    )
    _create(
        con,
        "ingest_sources",
        [
            {"source": "eshop", "kind": "customers", "customer_source": None},
            {"source": "web", "kind": "orders", "customer_source": "eshop"},
            {"source": "consents", "kind": "consents", "customer_source": "eshop"},
        ],
        "source varchar, kind varchar, customer_source varchar",
    )
    _create(
        con,
        "quarantine",
        [
            {
                "source": "eshop",
                "source_file": "crm.csv",
                "row_number": 99,
                "field": "birth_date",
                "rule": "parse_date",
                "raw_value": "31/02/1980",
                "raw_record": json.dumps(
                    {"Email": p.mail, "Phone": p.phone, "Name": f"{p.first_name} {p.last_name}"}
                ),
                "record_key": p.record_id,
            }
            for p in people
        ],
        "source varchar, source_file varchar, row_number bigint, field varchar, rule varchar, "
        "raw_value varchar, raw_record json, record_key varchar",
    )
    _create(
        con,
        "stg_consents",
        consents,
        "consent_key varchar, consent_id varchar, source varchar, customer_source varchar, "
        "customer_record_id varchar, loyalty_id varchar, email varchar, phone varchar, "
        "channel varchar, method varchar, is_opt_in boolean, consented_at timestamp, "
        "source_file varchar, row_number bigint",
    )
    con.execute("checkpoint")
    con.close()


def publish(settings: Activation, people: list[Person], consents: list[dict], run_id: str) -> None:
    """Publish a warehouse version with a customer_360 Parquet snapshot, as a nightly would."""
    layout = settings.layout
    layout.versions_dir.mkdir(parents=True, exist_ok=True)
    (layout.marts(run_id) / "customer_360" / "snapshot_on=2026-10-31").mkdir(parents=True)
    write_warehouse(layout.db(run_id), people, consents)
    folder = layout.marts(run_id) / "customer_360"
    with duckdb.connect(str(layout.db(run_id))) as con:
        con.execute(
            f"copy (select * from customer_360) to '{folder}/snapshot_on=2026-10-31/"
            "customer_360.parquet' (format parquet)"
        )
        con.execute(
            "create view customer_360_history as select * from read_parquet("
            f"'{folder}/snapshot_on=*/*.parquet', hive_partitioning = true)"
        )
    versions.publish(layout, run_id)


def make_settings(root: Path, **overrides) -> Activation:
    warehouse = root / "warehouse"
    layout = versions.Layout(
        versions_dir=warehouse / "versions",
        db_link=warehouse / "ccv.duckdb",
        marts_link=warehouse / "marts",
        keep=7,
    )
    return Activation(
        layout=layout,
        store_path=warehouse / "activation.duckdb",
        export_dir=root / "exports",
        pseudonym_key_path=warehouse / "pseudonym.key",
        **overrides,
    )


def opted_in(people: list[Person], channels=CHANNELS) -> list[dict]:
    rows, k = [], 0
    for p in people:
        for channel in channels:
            k += 1
            rows.append(consent_row(p, channel, True, NOW - dt.timedelta(days=10), k))
    return rows


def read_csv(path: Path) -> list[dict]:
    with duckdb.connect() as con:
        result = con.execute(f"select * from read_csv('{path}', all_varchar = true)")
        columns = [d[0] for d in result.description]
        return [dict(zip(columns, r, strict=True)) for r in result.fetchall()]


# --- filters ----------------------------------------------------------------------------------

COLUMNS = ["customer_id", "email", "rfm_segment", "lifetime_orders", "city", "is_lapsed"]


@pytest.mark.parametrize(
    "attack",
    [
        "1=1; drop table customers",
        "customer_id in (select customer_id from customers)",
        "read_csv('/etc/passwd') is not null",
        "exists (select 1 from customers)",
        "city = 'x' union select * from customers",
        "1=1) or (1=1",
        "email = 'a' -- and 1=0",
        "email = 'a' /* comment */",
        "customers.email is not null",
        "password = 'x'",
        "getvariable('as_of_date') is null",
        "lifetime_orders > 0 order by 1 limit 1",
        "lifetime_orders > (select max(lifetime_orders) from customer_360)",
        "glob('/etc/*') is not null",
        "count(*) over () > 0",
    ],
)
def test_filter_refuses_anything_but_a_boolean_expression_over_known_columns(attack):
    with duckdb.connect() as con, pytest.raises(FilterRejected):
        validate_filter(con, attack, COLUMNS)


def test_filter_accepts_ordinary_conditions_and_regenerates_them():
    with duckdb.connect() as con:
        sql = validate_filter(
            con,
            "lower(city) in ('leeds', 'york') and lifetime_orders between 2 and 5 "
            "and email like '%@example.org' and not is_lapsed and rfm_segment is not null",
            COLUMNS,
        )
        assert "IN ('leeds', 'york')" in sql and "BETWEEN 2 AND 5" in sql
        con.execute(
            "create table customer_360 as select 'C1' as customer_id, 'a@example.org' as email, "
            "'Champions' as rfm_segment, 3 as lifetime_orders, 'York' as city, false as is_lapsed"
        )
        assert con.execute(f"select customer_id from customer_360 where {sql}").fetchall() == [
            ("C1",)
        ]


def test_export_refuses_a_filter_that_is_not_boolean(tmp_path):
    settings = make_settings(tmp_path)
    people = [Person(1)]
    publish(settings, people, opted_in(people), "20261101T000000-aaaaaa")
    with pytest.raises(FilterRejected, match="boolean"):
        export_segment(settings, where="lifetime_orders + 1", channel="email", now=NOW)
    with pytest.raises(FilterRejected, match="unknown column") as info:
        export_segment(settings, where="secret = 1", channel="email", now=NOW)
    assert "did you mean" not in str(info.value)  # nothing close: no guess
    with pytest.raises(FilterRejected, match="did you mean 'lifetime_orders'"):
        export_segment(settings, where="lifetime_ordres > 2", channel="email", now=NOW)
    with pytest.raises(ExportError, match="unknown segment"):
        export_segment(settings, segment="Nobody", channel="email", now=NOW)
    with pytest.raises(ExportError, match="segment, a filter"):
        export_segment(settings, channel="email", now=NOW)
    assert not (tmp_path / "exports").exists() or not list((tmp_path / "exports").iterdir())


# --- consent, suppression, cap: property-based ------------------------------------------------

event = st.tuples(
    st.one_of(st.none(), st.integers(min_value=0, max_value=5)),  # day offset (None: no time)
    st.booleans(),  # opt-in?
    st.sampled_from(["record", "email"]),  # how the event names the person
)
person_spec = st.fixed_dictionaries(
    {
        "events": st.lists(event, max_size=4),
        "suppressed": st.booleans(),
        "previous_exports": st.integers(min_value=0, max_value=3),
        "has_phone": st.booleans(),
    }
)


def expected_latest(events: list[tuple]) -> bool | None:
    """The model: latest timestamp wins, untimed events are oldest, opt-out wins ties."""
    if not events:
        return None
    ranked = sorted(events, key=lambda e: (e[0] is not None, e[0] or 0, not e[1]))
    return ranked[-1][1]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    specs=st.lists(person_spec, min_size=1, max_size=6),
    channel=st.sampled_from(CHANNELS),
    max_contacts=st.integers(min_value=1, max_value=2),
)
def test_export_is_exactly_the_latest_opt_ins_minus_suppressed_and_capped(
    specs, channel, max_contacts
):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings_ = make_settings(root, max_contacts=max_contacts, window_days=30)
        people = [
            Person(i + 1, phone=uk_mobile(i) if spec["has_phone"] else None)
            for i, spec in enumerate(specs)
        ]
        consents, k = [], 0
        for person, spec in zip(people, specs, strict=True):
            for day, opt_in, by in spec["events"]:
                k += 1
                at = None if day is None else dt.datetime(2026, 1, 1) + dt.timedelta(days=day)
                consents.append(consent_row(person, channel, opt_in, at, k, by))
        publish(settings_, people, consents, "20261101T000000-aaaaaa")
        store = open_store(settings_.store_path)
        for person, spec in zip(people, specs, strict=True):
            for i in range(spec["previous_exports"]):
                store.execute(
                    "insert into export_members values (?, ?, ?, ?)",
                    [person.customer_id, f"old{i}", channel, NOW - dt.timedelta(days=i + 1)],
                )
        store.close()
        for person, spec in zip(people, specs, strict=True):
            if spec["suppressed"]:
                suppress(settings_, email=person.mail, now=NOW)

        result = export_segment(settings_, segment="Champions", channel=channel, now=NOW)

        expected, reasons = (
            set(),
            {"suppressed": 0, "no_consent": 0, "no_contact_point": 0, "capped": 0},
        )
        for person, spec in zip(people, specs, strict=True):
            latest = expected_latest(spec["events"])
            consent = latest if latest is not None else channel == "postal"
            reachable = channel != "sms" or spec["has_phone"]
            if spec["suppressed"]:
                reasons["suppressed"] += 1
            elif not consent:
                reasons["no_consent"] += 1
            elif not reachable:
                reasons["no_contact_point"] += 1
            elif spec["previous_exports"] >= max_contacts:
                reasons["capped"] += 1
            else:
                expected.add(person)
        assert result.excluded == reasons
        rows = read_csv(result.path)
        if channel == "ads":
            assert {r["email_sha256"] for r in rows} == {hash_email(p.mail) for p in expected}
        else:
            assert {r["customer_id"] for r in rows} == {p.customer_id for p in expected}
        assert result.row_count == len(expected)


# --- the cap across runs ----------------------------------------------------------------------


def test_cap_holds_across_exports_and_expires_with_the_window(tmp_path):
    settings = make_settings(tmp_path, max_contacts=1, window_days=30)
    people = [Person(1), Person(2)]
    publish(settings, people, opted_in(people), "20261101T000000-aaaaaa")

    first = export_segment(settings, segment="Champions", channel="email", now=NOW)
    assert first.row_count == 2
    second = export_segment(
        settings, segment="Champions", channel="email", now=NOW + dt.timedelta(days=1)
    )
    assert second.row_count == 0 and second.excluded["capped"] == 2
    # another channel has its own budget
    sms = export_segment(settings, segment="Champions", channel="sms", now=NOW)
    assert sms.row_count == 2
    later = export_segment(
        settings, segment="Champions", channel="email", now=NOW + dt.timedelta(days=31)
    )
    assert later.row_count == 2


def test_cap_survives_a_new_published_version(tmp_path):
    """The store lives outside the versions, so a nightly publish keeps the contact history."""
    settings = make_settings(tmp_path, max_contacts=1)
    people = [Person(1)]
    publish(settings, people, opted_in(people), "20261101T000000-aaaaaa")
    export_segment(settings, segment="Champions", channel="email", now=NOW)
    publish(settings, people, opted_in(people), "20261102T000000-bbbbbb")
    again = export_segment(settings, segment="Champions", channel="email", now=NOW)
    assert again.excluded["capped"] == 1


# --- channels, hashing, logging ---------------------------------------------------------------


def test_ad_hashes_follow_the_platforms_normalisation():
    # printf %s test@example.com | sha256sum
    by_hand = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    assert hash_email("test@example.com") == by_hand
    assert hash_email("  Test@Example.COM ") == by_hand
    # printf %s +447911123456 | sha256sum  (E.164 with the +, Google Customer Match)
    assert hash_phone("+447911123456") == hashlib.sha256(b"+447911123456").hexdigest()
    assert hash_phone("07911 123456") is None  # not normalised: refused, not mis-hashed
    assert hash_email("   ") is None


def test_each_channel_writes_its_columns_and_ads_carry_no_clear_text(tmp_path):
    settings = make_settings(tmp_path)
    people = [
        Person(1, email=" Ann.Lee@Example.ORG ".strip().lower()),
        Person(2, phone=None),
        Person(3, address_line=None),
    ]
    publish(settings, people, opted_in(people), "20261101T000000-aaaaaa")

    email = export_segment(settings, segment="Champions", channel="email", now=NOW)
    assert list(read_csv(email.path)[0]) == [
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "segment",
    ]
    sms = export_segment(settings, segment="Champions", channel="sms", now=NOW)
    rows = read_csv(sms.path)
    assert {r["phone"] for r in rows} == {"+447911123456"}
    assert sms.excluded["no_contact_point"] == 1
    postal = export_segment(settings, segment="Champions", channel="postal", now=NOW)
    assert {r["customer_id"] for r in read_csv(postal.path)} == {
        people[0].customer_id,
        people[1].customer_id,
    }
    ads = export_segment(settings, segment="Champions", channel="ads", fmt="parquet", now=NOW)
    with duckdb.connect() as con:
        result = con.execute(f"select * from read_parquet('{ads.path}')")
        assert [d[0] for d in result.description] == ["email_sha256", "phone_sha256"]
        hashed = result.fetchall()
    assert (hash_email("ann.lee@example.org"), hash_phone("+447911123456")) in hashed
    raw = ads.path.read_bytes()
    for person in people:
        for value in (person.mail, person.e164, person.first_name, person.customer_id):
            assert value is None or value.encode() not in raw


def test_postal_is_legitimate_interest_unless_opted_out(tmp_path):
    settings = make_settings(tmp_path)
    people = [Person(1), Person(2)]
    consents = [consent_row(people[1], "postal", False, NOW - dt.timedelta(days=1), 1)]
    publish(settings, people, consents, "20261101T000000-aaaaaa")
    postal = export_segment(settings, segment="Champions", channel="postal", now=NOW)
    assert [r["customer_id"] for r in read_csv(postal.path)] == [people[0].customer_id]
    email = export_segment(settings, segment="Champions", channel="email", now=NOW)
    assert email.row_count == 0 and email.excluded["no_consent"] == 2


def test_every_export_is_logged_with_the_checksum_of_its_file(tmp_path):
    settings = make_settings(tmp_path)
    people = [Person(1), Person(2, rfm_segment="At Risk")]
    publish(settings, people, opted_in(people), "20261101T000000-aaaaaa")
    out = tmp_path / "out" / "winback.csv"
    result = export_segment(
        settings,
        where="lifetime_orders >= 0 and city = 'Leeds'",
        segment="At Risk",
        channel="email",
        out=out,
        triggered_by="test",
        now=NOW,
    )
    assert result.path == out and result.row_count == 1
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert [p.name for p in out.parent.iterdir()] == ["winback.csv"]  # no temp file left
    with duckdb.connect(str(settings.store_path), read_only=True) as con:
        log = con.execute(
            "select triggered_by, segment, filter, channel, row_count, file_path, file_sha256 "
            "from export_log"
        ).fetchall()
        members = con.execute("select customer_id, channel from export_members").fetchall()
    assert log == [
        (
            "test",
            "At Risk",
            "((lifetime_orders >= 0) AND (city = 'Leeds'))",
            "email",
            1,
            str(out),
            result.sha256,
        )
    ]
    assert members == [(people[1].customer_id, "email")]


def test_consent_by_email_only_reaches_the_customer(tmp_path):
    settings = make_settings(tmp_path)
    people = [Person(1)]
    consents = [consent_row(people[0], "email", True, NOW, 1, by="email")]
    publish(settings, people, consents, "20261101T000000-aaaaaa")
    assert export_segment(settings, segment="Champions", channel="email", now=NOW).row_count == 1


def test_the_flow_calls_the_same_export(tmp_path, monkeypatch):
    import ccv.activation.flow as flow_module

    settings = make_settings(tmp_path)
    people = [Person(1)]
    publish(settings, people, opted_in(people), "20261101T000000-aaaaaa")
    monkeypatch.setattr(flow_module, "load_config", lambda path: settings)
    summary = export_flow.fn(config_path="x", segment="Champions", channel="sms")
    assert summary["row_count"] == 1 and Path(summary["path"]).exists()
