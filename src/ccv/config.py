"""Parse and validate `ccv.toml` once, into typed objects that the stages receive.

Nothing below the CLI or the flow reads the config file or the environment: they take a `Config`.
A wrong key, a wrong type or a mapping to an unknown canonical field fails here with a message
that names the key path (e.g. `sources[1].columns.emial: unknown canonical field`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Canonical fields per source kind. `source_record_id` / `order_id` / `response_id` are the keys.
CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": (
        "source_record_id",
        "first_name",
        "last_name",
        "full_name",
        "email",
        "phone",
        "birth_date",
        "gender",
        "address_line",
        "city",
        "postcode",
        "region",
        "country",
        "loyalty_id",
        "created_at",
        "updated_at",
        "email_opt_in",
        "sms_opt_in",
    ),
    "orders": (
        "order_id",
        "customer_record_id",
        "email",
        "phone",
        "loyalty_id",
        "ordered_at",
        "channel",
        "store_id",
        "status",
        "gross_amount",
        "discount_amount",
        "net_amount",
        "currency",
    ),
    "surveys": (
        "response_id",
        "customer_record_id",
        "email",
        "phone",
        "loyalty_id",
        "submitted_at",
        "nps",
        "csat",
        "comment",
    ),
    "consents": (
        "consent_id",
        "customer_record_id",
        "email",
        "phone",
        "loyalty_id",
        "channel",
        "is_opt_in",
        "consented_at",
        "method",
    ),
    "order_lines": (
        "order_id",
        "line_number",
        "sku",
        "product_name",
        "category",
        "quantity",
        "unit_price",
        "line_amount",
    ),
}
KEY_FIELD = {
    "customers": "source_record_id",
    "orders": "order_id",
    "surveys": "response_id",
    "consents": "consent_id",
    "order_lines": "order_id",  # a line is keyed by (order_id, line_number)
}
ORDER_STATUSES = ("completed", "cancelled", "refunded", "returned")
CHANNELS = ("web", "store", "app")
CONSENT_CHANNELS = ("email", "sms", "postal", "ads")

SourceKind = Literal["customers", "orders", "surveys", "consents", "order_lines"]


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    """Reader options for delimited text, passed to DuckDB's CSV reader."""

    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    encoding: Literal["utf-8", "latin-1", "utf-16"] = "utf-8"
    header: bool = True
    decimal_comma: bool = False
    thousands: Literal[",", ".", " ", "'"] | None = None
    """thousands separator of amounts (`1,234.50`); must differ from the decimal mark"""

    @model_validator(mode="after")
    def _separators_differ(self) -> CsvOptions:
        decimal_mark = "," if self.decimal_comma else "."
        if self.thousands == decimal_mark:
            raise ValueError(f"thousands: '{self.thousands}' is also the decimal mark")
        return self


class BooleanWords(_Strict):
    """Extra words (case-insensitive) read as true / false, on top of the built-in ones."""

    true: list[str] = []
    false: list[str] = []


class SourceConfig(_Strict):
    """One configured input: what it is, where its files are, how its columns map."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    kind: SourceKind
    path: str
    format: Literal["csv", "jsonl", "parquet"]
    mandatory: bool = False
    csv: CsvOptions = CsvOptions()
    columns: dict[str, str]
    """canonical field -> source column name"""
    formats: dict[str, str] = {}
    """canonical date/timestamp field -> strptime format (default: ISO 8601)"""
    values: dict[str, dict[str, str]] = {}
    """canonical field -> {raw value -> canonical value}, e.g. status SALE -> completed"""
    constants: dict[str, str] = {}
    """canonical field -> constant value for every row, e.g. channel = store"""
    drop_columns: list[str] = []
    """source columns not loaded at all (not kept in `extra`): those that change with every
    export without saying anything about the record (an export timestamp, a row counter). Kept,
    such a column makes every record of a snapshot export a new version every night: staged,
    and kept in the raw history, again each night."""
    customer_source: str | None = None
    """orders/surveys/consents: the customers source whose ids `customer_record_id` holds"""
    dayfirst: bool | list[str] = False
    """dates/timestamps without a format: read `03/05/1990` as 3 May (true: every such field)"""
    booleans: BooleanWords = BooleanWords()
    phone_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    """region of national phone numbers in this source (default: identity.default_phone_region)"""
    load: Literal["snapshot", "delta"] = "delta"
    """customers: `snapshot` files are complete; records missing from the latest are deleted"""
    consents_from_opt_in: bool = False
    """customers: turn `email_opt_in` / `sms_opt_in` into consent events (see stg_consents)"""
    lines_from: str | None = None
    """jsonl orders: key of the nested array of order lines (e.g. `items`)"""
    line_columns: dict[str, str] = {}
    """order_lines field -> key inside each nested line (with `lines_from`)"""
    order_source: str | None = None
    """order_lines: the orders source whose `order_id`s this file's `order_id` holds"""

    @model_validator(mode="after")
    def _fields_are_canonical(self) -> SourceConfig:
        known = CANONICAL_FIELDS[self.kind]
        for section in ("columns", "formats", "values", "constants"):
            for field in getattr(self, section):
                if field not in known:
                    raise ValueError(
                        f"{section}.{field}: unknown canonical field for kind '{self.kind}' "
                        f"(known: {', '.join(known)})"
                    )
        key = KEY_FIELD[self.kind]
        if key not in self.columns:
            raise ValueError(f"columns.{key}: required for kind '{self.kind}' (the record key)")
        both = set(self.columns) & set(self.constants)
        if both:
            raise ValueError(f"constants.{sorted(both)[0]}: also mapped in columns; pick one")
        loaded = {column: f"columns.{field}" for field, column in self.columns.items()}
        if self.lines_from:
            loaded[self.lines_from] = "lines_from"
        for column in self.drop_columns:
            if column in loaded:
                raise ValueError(
                    f"drop_columns: {column!r} is loaded ({loaded[column]}); "
                    "a column is either mapped or dropped"
                )
        if "customer_record_id" in self.columns and not self.customer_source:
            raise ValueError(
                "customer_source: required when columns.customer_record_id is mapped "
                "(name the customers source whose ids it holds)"
            )
        if self.format != "csv" and "csv" in self.model_fields_set:
            raise ValueError(f"csv: reader options given but format is '{self.format}'")
        self._options_fit_kind()
        return self

    def _options_fit_kind(self) -> None:
        only = {
            "load": ("customers", self.load != "delta"),
            "consents_from_opt_in": ("customers", self.consents_from_opt_in),
            "order_source": ("order_lines", self.order_source is not None),
            "lines_from": ("orders", self.lines_from is not None),
        }
        for option, (kind, given) in only.items():
            if given and self.kind != kind:
                raise ValueError(f"{option}: only for sources of kind '{kind}'")
        if self.kind == "order_lines" and not self.order_source:
            raise ValueError("order_source: required for kind 'order_lines' (the orders source)")
        if self.lines_from is not None and self.format != "jsonl":
            raise ValueError("lines_from: nested order lines are read from jsonl sources only")
        if bool(self.line_columns) != (self.lines_from is not None):
            raise ValueError("line_columns: give it together with lines_from")
        for field in self.line_columns:
            if field not in CANONICAL_FIELDS["order_lines"] or field == "order_id":
                raise ValueError(
                    f"line_columns.{field}: unknown order line field "
                    f"(known: {', '.join(CANONICAL_FIELDS['order_lines'][1:])})"
                )
        if isinstance(self.dayfirst, list):
            for field in self.dayfirst:
                if field not in CANONICAL_FIELDS[self.kind]:
                    raise ValueError(f"dayfirst: unknown canonical field '{field}'")


MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B)")
"""A DuckDB memory size as `[warehouse] memory_limit` takes it: number, unit (or % of RAM)."""


class WarehouseConfig(_Strict):
    """Where the published warehouse lives.

    `path` and `marts_dir` are what analysts open; they are symlinks into the current version under
    `versions_dir`, which keeps the last `keep_versions` published runs for rollback.
    """

    path: Path = Path("warehouse/ccv.duckdb")
    marts_dir: Path = Path("warehouse/marts")
    versions_dir: Path = Path("warehouse/versions")
    keep_versions: int = Field(default=7, ge=1)
    keep_snapshot_days: int = Field(default=0, ge=0)
    """Parquet mart snapshots kept: those of the last this many days before a run's as-of date
    (0: every snapshot). Each night adds one per mart: ~210 MB at a million customers."""
    memory_limit: str = "4GB"
    """DuckDB's memory limit for a run's connections ("4GB", "8GiB", "25%" of RAM): above it
    DuckDB spills to disk. DuckDB's own default (80 % of RAM) leaves nothing for the resolve
    stage's pandas frames, which share the process; while they are alive, DuckDB gets a quarter
    of this limit, at least 1 GB (`identity.resolve.duckdb_beside_frames`)."""

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not MEMORY_SIZE.fullmatch(value.strip()):
            raise ValueError(
                f"expected a size such as '4GB' or '8GiB', or a share of RAM such as '25%', "
                f"not {value!r}"
            )
        return value.strip()


class RunConfig(_Strict):
    """How a run picks its as-of date: `latest_order` (last order date in the data), `today`,
    or a fixed `YYYY-MM-DD`."""

    as_of: str = "latest_order"
    future_tolerance_days: int = Field(default=1, ge=0)

    @field_validator("as_of")
    @classmethod
    def _as_of_rule(cls, value: str) -> str:
        if value in ("latest_order", "today"):
            return value
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not 'latest_order', 'today' or a date YYYY-MM-DD"
            ) from None
        return value


class ScheduleConfig(_Strict):
    """The nightly deployment's schedule."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    stage_timeout_minutes: int = Field(default=120, ge=1)
    """a stage of the Prefect flow running longer than this fails the night (nothing published)"""

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"'{value}' is not a 5-field cron expression")
        return value


SurvivorshipRule = Literal[
    "source_priority", "most_recent", "most_frequent", "longest", "verified_first"
]
# The golden record's attributes and the rule each uses unless the config says otherwise:
# names and birth date by majority (a typo loses to the spelling most records agree on),
# contact points by evidence of use, addresses and consents by recency (people move, minds change).
DEFAULT_SURVIVORSHIP: dict[str, str] = {
    "first_name": "most_frequent",
    "last_name": "most_frequent",
    "email": "verified_first",
    "phone": "verified_first",
    "birth_date": "most_frequent",
    "gender": "most_recent",
    "address_line": "most_recent",
    "city": "most_recent",
    "postcode": "most_recent",
    "region": "most_recent",
    "country": "most_recent",
    "loyalty_id": "most_recent",
    "email_opt_in": "most_recent",
    "sms_opt_in": "most_recent",
}


class SurvivorshipConfig(_Strict):
    """How the golden record picks each attribute among a customer's source records."""

    source_priority: list[str] = []
    """source names, most trusted first (rule `source_priority`, and every rule's tie-break)"""
    rules: dict[str, SurvivorshipRule] = {}
    """attribute -> rule, overriding DEFAULT_SURVIVORSHIP"""

    @field_validator("rules")
    @classmethod
    def _known_attributes(cls, rules: dict[str, str]) -> dict[str, str]:
        for attribute in rules:
            if attribute not in DEFAULT_SURVIVORSHIP:
                raise ValueError(
                    f"{attribute}: not a golden-record attribute "
                    f"(known: {', '.join(DEFAULT_SURVIVORSHIP)})"
                )
        return rules

    def rule(self, attribute: str) -> str:
        """The rule in force for `attribute`."""
        return self.rules.get(attribute, DEFAULT_SURVIVORSHIP[attribute])


class GuardsConfig(_Strict):
    """Integrity guards: records that disagree on these are never one customer."""

    distinct_loyalty_ids: bool = False
    """two different loyalty ids in one customer split it along its weakest link"""
    max_birth_gap_days: int = Field(default=366, ge=0)
    """birth dates further apart (and not a day/month swap or one typo) split a customer"""


class IdentityConfig(_Strict):
    """Identity-resolution settings."""

    default_phone_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "GB"
    match_probability: float = Field(default=0.9, gt=0, lt=1)
    """customer records scoring at least this are linked"""
    strong_match_probability: float = Field(default=0.999, gt=0, lt=1)
    """links at least this sure form clusters; weaker ones may only attach a lone CRM record"""
    max_block_size: int = Field(default=50, ge=2)
    """blocks larger than this are reported, not compared (they would explode the pair count)"""
    min_records_to_estimate: int = Field(default=1000, ge=2)
    """fewer customer records than this use the shipped match parameters instead of EM"""
    incremental: bool = True
    """a night standardises and compares only new or changed records against the persisted
    state (`identity_std`, `match_pairs`); false recomputes everything and re-estimates"""
    reestimate_growth: float = Field(default=0.2, ge=0)
    """re-estimate m/u when the customer-record count moved by more than this fraction since
    the last estimation; otherwise an incremental night scores with the stored parameters"""
    survivorship: SurvivorshipConfig = SurvivorshipConfig()
    guards: GuardsConfig = GuardsConfig()

    @model_validator(mode="after")
    def _strong_above_match(self) -> IdentityConfig:
        if self.strong_match_probability < self.match_probability:
            raise ValueError("strong_match_probability: must be >= match_probability")
        return self


class AnalyticsConfig(_Strict):
    """Parameters of the marts."""

    rfm_window_months: int = Field(default=24, ge=1, le=240)
    lapsed_after_days: int = Field(default=365, ge=1)
    clv_horizon_months: int = Field(default=12, ge=1, le=120)
    clv_monthly_discount_rate: float = Field(default=0.0, ge=0, lt=1)


class ActivationConfig(_Strict):
    """Marketing exports and privacy requests (see docs/activation_and_privacy.md).

    The store is a DuckDB file of its own: nightly runs publish new warehouse versions built from
    a copy of the published file, so the export log, contact history and suppression list must
    live outside them.
    """

    store_path: Path = Path("warehouse/activation.duckdb")
    """export log, export members, suppression list, privacy log; never rewritten by a run"""
    export_dir: Path = Path("exports")
    """default folder of export files (outside the warehouse folder: files that were sent)"""
    max_contacts: int = Field(default=3, ge=1)
    """a customer is exported at most this many times per channel within `window_days`"""
    window_days: int = Field(default=30, ge=1)
    postal_legitimate_interest: bool = True
    """postal mail needs no opt-in (legitimate interest) but honours an opt-out"""
    pseudonym_key_path: Path = Path("warehouse/pseudonym.key")
    """secret key of `customer_360_pseudo.pseudo_id` (created on first use, mode 0600)"""


class ScaleConfig(_Strict):
    """Where the heavy work of a run executes (see docs/scaling.md).

    `local` (the default) runs everything in the flow's process. `dask` splits the candidate pairs
    of identity matching into `partitions` by a hash of their blocking key and compares each
    partition as a Prefect task on a Dask cluster through `prefect-dask`: the scheduler at
    `dask_address`, or a temporary local cluster of `dask_workers` processes when it is empty.
    """

    task_runner: Literal["local", "dask"] = "local"
    dask_address: str = ""
    """scheduler of an existing cluster, e.g. `tcp://10.0.0.5:8786`; empty: start a local one"""
    dask_workers: int = Field(default=2, ge=1)
    """worker processes of the temporary local cluster (ignored with `dask_address`)"""
    partitions: int = Field(default=8, ge=1, le=4096)
    """pair partitions (Prefect tasks) per run; a few per worker keeps them all busy"""

    @model_validator(mode="after")
    def _address_needs_dask(self) -> ScaleConfig:
        if self.dask_address and self.task_runner != "dask":
            raise ValueError("dask_address: only used with task_runner = 'dask'")
        return self


class Config(_Strict):
    """The whole, validated configuration. Relative paths are resolved against `base_dir`."""

    base_dir: Path = Path(".")
    warehouse: WarehouseConfig = WarehouseConfig()
    run: RunConfig = RunConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    identity: IdentityConfig = IdentityConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    activation: ActivationConfig = ActivationConfig()
    scale: ScaleConfig = ScaleConfig()
    sources: list[SourceConfig]

    @model_validator(mode="after")
    def _sources_consistent(self) -> Config:
        names = [s.name for s in self.sources]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"sources[{i}].name: duplicate source name '{name}'")
        kinds = {s.name: s.kind for s in self.sources}
        for i, s in enumerate(self.sources):
            if s.customer_source and kinds.get(s.customer_source) != "customers":
                raise ValueError(
                    f"sources[{i}].customer_source: '{s.customer_source}' is not a configured "
                    "source of kind 'customers'"
                )
            if s.order_source and kinds.get(s.order_source) != "orders":
                raise ValueError(
                    f"sources[{i}].order_source: '{s.order_source}' is not a configured "
                    "source of kind 'orders'"
                )
        for i, name in enumerate(self.identity.survivorship.source_priority):
            if name not in kinds:
                raise ValueError(
                    f"identity.survivorship.source_priority[{i}]: '{name}' "
                    "is not a configured source"
                )
        if "customers" not in kinds.values():
            raise ValueError("sources: at least one source of kind 'customers' is required")
        return self

    def resolve(self, path: Path | str) -> Path:
        """Return `path` made absolute against the config file's folder."""
        # normpath, not resolve(): the warehouse paths are symlinks that must stay links
        return Path(os.path.normpath(self.base_dir / path))

    def source(self, name: str) -> SourceConfig:
        """Return the source named `name`."""
        return next(s for s in self.sources if s.name == name)


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _element(annotation: object) -> object:
    """The model inside `X | None` or `list[X]` (else the annotation itself)."""
    for arg in typing.get_args(annotation):
        if _is_model(inner := _element(arg)):
            return inner
    return annotation


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The config model that holds the key at `loc` (a validation error's location)."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list: `model` is its element's model already
        field = model.model_fields.get(part)
        inner = _element(field.annotation) if field else None
        if not _is_model(inner):
            return None
        model = inner
    return model


def _unknown_key(loc: tuple) -> str:
    """What to say of a key the config does not have: the closest known one, or them all."""
    model = _model_at(loc)
    if model is None:
        return "unknown key"
    known = [name for name in model.model_fields if name != "base_dir"]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key (known: {', '.join(known)})"


def parse_config(data: dict, base_dir: Path = Path(".")) -> Config:
    """Validate a config mapping; raise ConfigError naming every bad key."""
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = re.sub(r"^(Value error|Assertion failed), ", "", err["msg"])
            if err["type"] == "extra_forbidden":
                msg = _unknown_key(err["loc"])
            where = _location(err["loc"])
            problems.append(f"{where}: {msg}" if where else msg)
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
