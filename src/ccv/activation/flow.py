"""Prefect flow for scheduled exports: it only loads the config and calls `export_segment`.

A scheduled export is an ordinary deployment of this flow with fixed parameters, e.g. the
weekly win-back email list::

    export_flow.to_deployment(
        name="winback-email",
        schedules=[Cron("0 6 * * 1", timezone="Europe/London")],
        parameters={"config_path": "ccv.toml", "segment": "At Risk", "channel": "email"},
    )

Every export, scheduled or not, is consent-checked, capped and logged the same way; the run's
`triggered_by` is `prefect:<flow run name>`.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow
from prefect.runtime import flow_run

from ccv.activation.export import export_segment
from ccv.config import load_config


@flow(name="export-segment", validate_parameters=True)
def export_flow(
    config_path: str = "ccv.toml",
    segment: str | None = None,
    where: str | None = None,
    channel: str = "email",
    fmt: str = "csv",
    out: str | None = None,
) -> dict:
    """Export a segment for a channel (see `ccv.activation.export.export_segment`)."""
    result = export_segment(
        load_config(config_path),
        segment=segment,
        where=where,
        channel=channel,
        fmt=fmt,
        out=out,
        triggered_by=f"prefect:{flow_run.get_name() or 'local'}",
    )
    summary = asdict(result)
    summary["path"] = str(result.path)
    summary["exported_at"] = result.exported_at.isoformat() if result.exported_at else None
    return summary
