"""Benchmark an incremental night: a full night, then a 1 % delta, against a full rebuild.

    .venv/bin/python benchmarks/bench_incremental.py --customers 100000 [--delta 0.01]

Inputs come from the sample generator (as `benchmarks/run.py`, cached under `--out/<customers>/`)
and are cut into two nights of drops: night 1 holds all but the last `--delta` of the loyalty
CRM rows, web orders and till receipts, and the e-shop snapshot without its last `--delta` of
accounts; night 2 delivers the held-back rows as new drop files and the complete e-shop
snapshot, in which `--delta`/5 of the accounts also changed their e-mail and phone. Then the
same inputs are rebuilt in full (`full_refresh`), and the incremental result is checked against
it (customers as sets of source records, RFM and segments; the rebuild re-estimates the match
parameters, the incremental night reuses night 1's, so links at the threshold may differ).
Prints per-stage wall and CPU time, peak memory, load average, what resolve did
(`identity_runs`) and the ratio incremental / full per stage (wall, and CPU: `cpu_ratio`).

For working on the delta night at a large size (a 1M night 1 takes ~5 minutes):
`--reuse-night-1` keeps the project's state after night 1 in a sibling folder and restores it
on the next call instead of running night 1 again; `--no-rebuild` stops after night 2;
`--phases` also prints night 2's resolve and build phases (wall, CPU, peak RSS; as
`bench_stage.py` does for one stage); `--statements FILE` (implies `--phases`) also times every
SQL statement of night 2 and writes them to FILE, one JSON object a line, and prints the
costliest; `--profile FILE` writes night 2's cProfile stats (read them with
`python -m pstats FILE`); `--no-new-files` runs night 2 with no new drop; `--repeat N` (with
`--reuse-night-1`) runs night 2 N times, each from night 1's restored state, and reports every
run's stage times and their median (`night_2_repeats`, `night_2_median_seconds`): a change
worth a second or two is smaller than the spread between two runs of the same code.

`--nights N` measures the steady state instead of the first delta night: night 1 then holds all
but N x `--delta` of the rows, and N delta nights follow one after another, each bringing the
next `--delta` of the rows and that night's whole e-shop snapshot (a new fifth of `--delta` of
the accounts changed each night: from the third night on, old exports are pruned). Every delta
night's stage times go to `delta_nights` and the published file's size after each night to
`published_mb` (the next night starts by copying it); the `night_2_*` keys (phases, statements,
profile, the rebuild and the comparison with it) then describe the last night,
`measured_night`.

The machine's state moves timings by ±20 % between identical runs here (a VM with busy
neighbours). So the run also times the *floor* (`benchmarks/run.py`: DuckDB scanning every
input once) before night 1, between the nights and at the end (`floor_seconds`): compare two
runs only when their floors agree.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import shutil
import statistics
import sys
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_stage import TASKS, Phases, timed_statements  # noqa: E402

from benchmarks.run import PeakRSS, floor_seconds, prepare, run  # noqa: E402
from ccv.progress import LOGGER  # noqa: E402
from tests.test_incremental import outcome  # noqa: E402

# source file -> (name stem of its drops, has a header line)
DROPPED = {
    "crm_store_loyalty.csv": ("loyalty", True),
    "store_orders.csv": ("store_orders", True),
    "web_orders.jsonl": ("web_orders", False),
}
SNAPSHOT = "crm_eshop_accounts.csv"


def change_account(line: str, n: int, night: int = 1) -> str:
    """An e-shop account line with a new e-mail and phone and a later update time, as changed
    in the `night`-th delta night (1: the same change as ever, so older results compare)."""
    fields = line.rstrip("\n").split(",")
    moved = "moved" if night == 1 else f"moved{night}"
    fields[3], fields[4] = f"{moved}.{n}@example.org", f"07{699 + night} 9{n % 100000:05d}"
    fields[12] = f"2026-10-{night:02d}T00:00:00"
    return ",".join(fields) + "\n"


def split_nights(config_path: Path, delta: float, nights: int = 1) -> Path:
    """Write the drops of night 1 and of `nights` delta nights after it; return the folder the
    delta nights' files wait in (night k's named ``*_<k>.*``: ingest orders files by
    the numbers in their names, so ``eshop_10.csv`` comes after ``eshop_9.csv``).

    Each delta night brings the next `delta` of the dropped sources' rows and the whole e-shop
    snapshot as it stands that night: the accounts up to the night's cut, of which `delta`/5
    changed their e-mail and phone that night (a different fifth of a percent each night;
    earlier nights' changes stay)."""
    data = config_path.parent / "data" / "sample"
    drops, later = data / "drops", data / "later"
    shutil.rmtree(drops, ignore_errors=True)
    shutil.rmtree(later, ignore_errors=True)
    drops.mkdir()
    later.mkdir()
    text = config_path.read_text()
    for name, (stem, header) in DROPPED.items():
        lines = (data / name).read_text(encoding="utf-8").splitlines(keepends=True)
        head, rows = (lines[:1], lines[1:]) if header else ([], lines)
        cuts = _cuts(len(rows), delta, nights)
        suffix = name.rsplit(".", 1)[1]
        (drops / f"{stem}_1.{suffix}").write_text("".join(head + rows[: cuts[0]]))
        for k, (start, end) in enumerate(pairwise(cuts), start=2):
            (later / f"{stem}_{k}.{suffix}").write_text("".join(head + rows[start:end]))
        text = text.replace(f'"data/sample/{name}"', f'"data/sample/drops/{stem}_*.{suffix}"')
    lines = (data / SNAPSHOT).read_text(encoding="utf-8").splitlines(keepends=True)
    head, rows = lines[:1], lines[1:]
    cuts = _cuts(len(rows), delta, nights)
    (drops / "eshop_1.csv").write_text("".join(head + rows[: cuts[0]]))
    step = max(1, round(1 / (delta / 5)))
    for k in range(1, nights + 1):
        # account i changes in delta night i % step + 1 (the first: every step-th account)
        export = [
            change_account(r, i, i % step + 1) if i % step < k else r
            for i, r in enumerate(rows[: cuts[k]])
        ]
        (later / f"eshop_{k + 1}.csv").write_text("".join(head + export))
    text = text.replace(f'"data/sample/{SNAPSHOT}"', '"data/sample/drops/eshop_*.csv"')
    if nights > 1:  # a published version is a 4 GB file at a million customers: keep two
        text = text.replace("[warehouse]\n", "[warehouse]\nkeep_versions = 2\n", 1)
    config_path.write_text(text)
    return later


def _cuts(rows: int, delta: float, nights: int) -> list[int]:
    """Where night 1's rows end and each delta night's end: `delta` of the rows a night."""
    each = max(1, round(rows * delta))
    first = max(0, rows - nights * each)
    return [first + k * each for k in range(nights)] + [rows]


# what night 1 changes in the project: restored together, into the project (input files are
# recorded relative to it, so the inputs themselves need not be copied)
NIGHT_1_STATE = ("ccv.toml", "warehouse", "data/sample/drops", "data/sample/later")


def save_night_1(project: Path, saved: Path) -> None:
    """Copy the project's state after night 1 to `saved`."""
    shutil.rmtree(saved, ignore_errors=True)
    for part in NIGHT_1_STATE:
        source, target = project / part, saved / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)


def restore_night_1(saved: Path, project: Path) -> None:
    """Put the state of `save_night_1` back into the project, replacing what night 2 left."""
    for part in NIGHT_1_STATE:
        target = project / part
        if target.is_dir():
            shutil.rmtree(target)
        if (saved / part).is_dir():
            shutil.copytree(saved / part, target, symlinks=True)
        else:
            shutil.copy2(saved / part, target)


def deliver_night(project: Path, night: int, deliver: bool) -> None:
    """Move night `night`'s files into the drops folder (none when not `deliver`)."""
    later = project / "data" / "sample" / "later"
    for file in sorted(later.glob(f"*_{night}.*")) if deliver else ():
        file.rename(project / "data" / "sample" / "drops" / file.name)


def published_mb(project: Path) -> float:
    """The size of the published DuckDB file (what the next night copies first), in MB."""
    return round((project / "warehouse" / "ccv.duckdb").stat().st_size / 1e6, 1)


def night(config_path: Path, full_refresh: bool) -> dict:
    """One nightly run, timed per stage (seconds rounded), with what resolve computed."""
    result = run(config_path, full_refresh)
    result["seconds"] = {k: round(v, 2) for k, v in result["seconds"].items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--delta", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument(
        "--reuse-night-1",
        action="store_true",
        help="keep the state after night 1 beside the project and start from it next time",
    )
    parser.add_argument(
        "--no-new-files",
        dest="deliver",
        action="store_false",
        help="night 2 brings no new file (what a night with no drop costs)",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="print night 2's ingest, resolve and build phases",
    )
    parser.add_argument(
        "--statements",
        type=Path,
        help="time every SQL statement of night 2 and write them to this file (JSON lines)",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="write night 2's cProfile stats here"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run night 2 N times from night 1's saved state (needs --reuse-night-1)",
    )
    parser.add_argument(
        "--nights",
        type=int,
        default=1,
        metavar="N",
        help="N delta nights one after another (steady state); the last is measured in detail "
        "and compared with its rebuild",
    )
    parser.add_argument(
        "--no-rebuild",
        dest="rebuild",
        action="store_false",
        help="skip the full rebuild of night 2 (and the comparison with it)",
    )
    args = parser.parse_args()
    if args.repeat > 1 and not args.reuse_night_1:
        parser.error("--repeat needs --reuse-night-1 (each run starts from night 1's state)")
    if args.repeat > 1 and args.nights > 1:
        parser.error("--repeat repeats the one delta night: not with --nights")
    config_path = prepare(args.customers, args.seed, args.out)
    project = config_path.parent
    split = f"-x{args.nights}" if args.nights > 1 else ""  # night 1 holds less data then
    saved = project.with_name(f"{project.name}-night1-{args.delta}{split}")
    result = {"customers": args.customers, "delta": args.delta}
    floors = result["floor_seconds"] = []
    if args.reuse_night_1 and saved.exists():
        restore_night_1(saved, project)
        result["night_1_full"] = "reused"
    else:
        split_nights(config_path, args.delta, args.nights)
        floors.append(round(floor_seconds(config_path), 2))
        result["night_1_full"] = night(config_path, full_refresh=True)
        if args.reuse_night_1:
            save_night_1(project, saved)
    floors.append(round(floor_seconds(config_path), 2))
    if args.nights > 1:
        result["published_mb"] = {"1": published_mb(project)}
        result["delta_nights"] = {}
    for k in range(2, args.nights + 1):  # the delta nights before the measured one
        deliver_night(project, k, args.deliver)
        result["delta_nights"][str(k)] = night(config_path, full_refresh=False)["seconds"]
        result["published_mb"][str(k)] = published_mb(project)
    last = result["measured_night"] = args.nights + 1  # night 2 unless --nights
    deliver_night(project, last, args.deliver)
    if args.phases or args.statements:
        with PeakRSS() as memory:
            phases = Phases((*TASKS["ingest"], *TASKS["resolve"], *TASKS["build"]), memory)
            LOGGER.addHandler(phases)
            try:
                with timed_statements(phases, bool(args.statements)) as rows:
                    result["night_2_incremental"] = night(config_path, full_refresh=False)
            finally:
                LOGGER.removeHandler(phases)
            phases.close_phase("end")
        result["night_2_phases"] = phases.rows
        if args.statements:
            args.statements.write_text("".join(json.dumps(row) + "\n" for row in rows))
            result["night_2_costliest_statements"] = sorted(rows, key=lambda r: -r["cpu_seconds"])[
                :25
            ]
    elif args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            result["night_2_incremental"] = night(config_path, full_refresh=False)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        result["night_2_incremental"] = night(config_path, full_refresh=False)
    floors.append(round(floor_seconds(config_path), 2))
    if args.nights > 1:
        result["delta_nights"][str(last)] = result["night_2_incremental"]["seconds"]
        result["published_mb"][str(last)] = published_mb(project)
    if args.repeat > 1:
        repeats = [result["night_2_incremental"]["seconds"]]
        for _ in range(args.repeat - 1):
            restore_night_1(saved, project)
            deliver_night(project, last, args.deliver)
            result["night_2_incremental"] = night(config_path, full_refresh=False)
            repeats.append(result["night_2_incremental"]["seconds"])
            floors.append(round(floor_seconds(config_path), 2))
        result["night_2_repeats"] = repeats
        result["night_2_median_seconds"] = {
            stage: statistics.median(r[stage] for r in repeats) for stage in repeats[0]
        }
    if not args.rebuild:
        print(json.dumps(result, indent=2))
        return
    incremental = outcome(config_path)
    # the same inputs and config, without the warehouse (up to keep_versions files of 4 GB)
    shutil.copytree(
        config_path.parent,
        config_path.parent / "rebuild",
        ignore=shutil.ignore_patterns("warehouse", "stages"),
    )
    rebuild_config = config_path.parent / "rebuild" / "ccv.toml"
    result["night_2_full_rebuild"] = night(rebuild_config, full_refresh=True)
    rebuilt = outcome(rebuild_config)
    result["same_as_full_rebuild"] = incremental == rebuilt
    # customers (as record sets, with RFM and segments) found in only one of the two results
    result["customers_differing"] = len(set(incremental.items()) ^ set(rebuilt.items()))
    shutil.rmtree(rebuild_config.parent)
    inc, full = result["night_2_incremental"], result["night_2_full_rebuild"]
    for key, measure in (("ratio_incremental_to_full", "seconds"), ("cpu_ratio", "cpu_seconds")):
        result[key] = {
            stage: round(inc[measure][stage] / max(full[measure][stage], 0.01), 3)
            for stage in inc[measure]
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
