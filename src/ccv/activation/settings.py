"""Settings of activation and privacy: the `[activation]` config section and resolved paths.

Why a separate store: every nightly run builds a new warehouse version from a *copy* of the
published DuckDB file and publishes it by swapping a link, so anything written into the published
file after the copy was taken is lost at the next publish. The export log, the export members
(contact pressure), the suppression list and the privacy log must outlive every run, rollback and
full refresh, so they live in their own DuckDB file (`store_path`, default
`warehouse/activation.duckdb`) that the nightly never opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ccv.config import Config
from ccv.warehouse import versions


@dataclass(frozen=True)
class Activation:
    """Resolved settings: absolute paths and the warehouse layout."""

    layout: versions.Layout
    store_path: Path
    export_dir: Path
    max_contacts: int = 3
    window_days: int = 30
    postal_legitimate_interest: bool = True
    default_phone_region: str = "GB"
    pseudonym_key_path: Path | None = None

    @classmethod
    def from_config(cls, config: Config) -> Activation:
        """Settings from a `Config`'s `[activation]` section, with absolute paths."""
        section = config.activation
        return cls(
            layout=versions.Layout.from_config(config),
            store_path=config.resolve(section.store_path),
            export_dir=config.resolve(section.export_dir),
            max_contacts=section.max_contacts,
            window_days=section.window_days,
            postal_legitimate_interest=section.postal_legitimate_interest,
            default_phone_region=config.identity.default_phone_region,
            pseudonym_key_path=config.resolve(section.pseudonym_key_path),
        )


def settings_of(config_or_settings: Config | Activation) -> Activation:
    """Accept either a whole `Config` or already resolved `Activation` settings."""
    if isinstance(config_or_settings, Activation):
        return config_or_settings
    return Activation.from_config(config_or_settings)
