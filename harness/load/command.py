"""``harness load compare`` and ``harness load tune``: their options, and the exit codes.

compare: 0 when both of the plan's targets are met (the whole 95 % interval past
them), 1 naming each one missed, 3 when one is inconclusive or not measurable at
the load given, 2 for input or infrastructure that cannot run the comparison
(before any load). tune: 0 when a candidate met both targets, 1 when none did
within the budget, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.dsn import redact

__all__ = ["add_parser"]


def _progress(message: str) -> None:
    print(f"harness: {redact(message)}", file=sys.stderr, flush=True)


def _whole(text: str, *, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _positive(text: str) -> int:
    return _whole(text, least=1)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.load.compare import CompareOptions, run_compare
    from harness.load.report import write_report

    options = CompareOptions(
        config=args.config,
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration=args.duration,
        seed=args.seed,
        reports=args.reports,
        sweep=args.sweep,
        sweep_also=args.sweep_also,
        reference=args.reference,
        plan=args.plan,
        scale=args.scale,
        legacy=args.legacy,
        pg_bin=args.pg_bin,
        baseline_url=args.baseline_url,
        target_url=args.target_url,
        target_reader_url=args.target_reader_url,
        workers=args.workers,
        repeat=args.repeat,
        migrate_with=args.migrate_with,
    )
    outcome = run_compare(options, progress=_progress)
    summary, page = write_report(outcome, directory=args.reports / "load")
    for check in outcome.verdicts:
        print(f"{check.status.upper()} {check.reason}", flush=True)
    missed = ", ".join(f"{v.metric} ({v.status})" for v in outcome.missed)
    print(
        "the plan's targets are met" if not missed else f"the plan's targets are NOT met: {missed}",
        flush=True,
    )
    _progress(f"report written to {summary} and {page}")
    return outcome.exit_code


def cmd_tune(args: argparse.Namespace) -> int:
    import json

    from harness.load.pinning import placement_lines
    from harness.load.tune import TuneOptions, capacity_lines, run_tune, snippet, to_json
    from harness.load.tune_page import tune_html

    options = TuneOptions(
        plan=args.plan,
        users=args.users,
        budget=args.budget,
        duration=args.duration,
        config=args.config,
        reports=args.reports,
        pg_bin=args.pg_bin,
        scale=args.scale,
        migrate_with=args.migrate_with,
    )
    outcome = run_tune(options, progress=_progress)
    out = args.reports / "load"
    out.mkdir(parents=True, exist_ok=True)
    doc = to_json(outcome)
    (out / "tune.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    wanted = outcome.config.targets
    (out / "tune.html").write_text(
        tune_html(doc, p95_reduction=wanted.p95_reduction, error_reduction=wanted.error_reduction)
    )
    for line in placement_lines(outcome.placement) if outcome.placement else []:
        print(line, flush=True)
    for trial in outcome.trials:
        print(
            f"{'MEETS' if trial.meets else 'misses'} {trial.candidate.label()}: "
            f"{trial.candidate.server_connections} server connections, pool errors "
            f"{trial.run.pool_error_rate:.1%}, successful p95 "
            f"{trial.run.succeeded_p95_ms or trial.run.p95_ms:.1f} ms",
            flush=True,
        )
    found = outcome.found
    if found is None:
        print(
            f"no candidate met both targets within {args.budget:g} s ({len(outcome.trials)} "
            f"measured, {len(outcome.pruned)} pruned, {outcome.untried} untried)",
            flush=True,
        )
    else:
        print("capacity of the configuration found:", flush=True)
        for line in capacity_lines(outcome, found):
            print(f"  {line}", flush=True)
        print("\n# plan.toml\n" + snippet(outcome, found), flush=True)
    _progress(f"tune took {outcome.seconds:.0f} s; written to {out / 'tune.json'} and tune.html")
    return outcome.exit_code


def _add_tune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tune",
        help="measure pooling candidates and print the smallest that meets the plan's targets",
        description="Search the plan's pooling (pool modes, default_pool_size, reserve, "
        "max_client_conn, the instances' pool sizes) by measuring each candidate with a short "
        "run against one baseline run, fewest server connections first, pruning what the "
        "capacity arithmetic refuses; print the first that meets both targets as a plan.toml "
        "snippet. Exit 0 found, 1 none within --budget, 2 bad input (before any load).",
    )
    p.add_argument("--plan", type=Path, required=True, help="the plan to tune")
    p.add_argument("--users", type=_positive, required=True, help="instances to meet targets at")
    p.add_argument(
        "--budget", type=_rate, default=600.0, help="seconds of measuring at most (default 600)"
    )
    p.add_argument(
        "--duration", type=_positive, default=20, help="seconds per candidate run (default 20)"
    )
    p.add_argument("--config", type=Path, help="a TOML file overriding loadtests/compare.toml")
    p.add_argument("--scale", type=_positive, default=1, help="legacy data scale (default 1)")
    p.add_argument(
        "--migrate-with",
        type=Path,
        help="build the target's layout with this plan's steps instead of --plan's own (for a "
        "plan whose migration fails, such as plans/as-written: its pooling on the layout the "
        "corrected plan builds)",
    )
    p.add_argument("--pg-bin", help="directory holding initdb, pg_ctl")
    p.add_argument(
        "--reports", type=Path, default=Path("reports"), help="where reports go (reports/)"
    )
    p.set_defaults(func=cmd_tune)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``load`` (with ``compare``) on the CLI's subparsers."""
    load = subparsers.add_parser(
        "load",
        help="load the system before and after the plan: baseline vs target under Locust",
        description="Load tests of the plan's architecture.",
    )
    sub = load.add_subparsers(dest="load_command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "compare",
        help="run the same workload on the baseline and on the target; exit 1 naming each "
        "missed target",
        description="Run the same workload on the baseline (one primary, legacy database, no "
        "PgBouncer, hosted max_connections) and on the target (the migrated database behind "
        "the plan's PgBouncers), alternating for --repeat rounds, and write reports/load/: "
        "summary.json, Locust's CSVs and report.html. Exit 0 when both targets are met (the "
        "whole 95%% interval past them), 1 when one is missed (the whole interval short), 3 "
        "when one is inconclusive or not measurable at this load, 2 for bad input or "
        "unreachable servers (before any load).",
    )
    p.add_argument("--users", type=_positive, help="concurrent application instances")
    p.add_argument("--spawn-rate", type=_rate, help="instances started per second")
    p.add_argument("--duration", type=_positive, help="seconds of load per architecture")
    p.add_argument("--seed", type=int, help="random seed, the same for both architectures")
    p.add_argument(
        "--config",
        type=Path,
        help="a TOML file overriding loadtests/compare.toml (every number of the comparison)",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also run both over [sweep] instances and plot error rate and p95 against them",
    )
    p.add_argument(
        "--sweep-also",
        type=Path,
        metavar="PLAN",
        help="with --sweep: sweep the target again with this plan's pooling (its PgBouncer "
        "settings and instance pools, on the same migrated database), drawn beside the others: "
        "plans/as-written's numbers beside the corrected ones",
    )
    p.add_argument(
        "--reference",
        choices=("pgbench",),
        help="also run the comparison with pgbench -C and report it beside Locust's",
    )
    p.add_argument(
        "--plan", type=Path, help="the plan migrating the target (default: the config's [run] plan)"
    )
    p.add_argument("--scale", type=_positive, default=1, help="legacy data scale (default 1)")
    p.add_argument(
        "--legacy",
        type=Path,
        help="the plan's legacy database (SQL dump or pg_dump archive) for both sides, "
        "instead of the built-in one",
    )
    p.add_argument("--pg-bin", help="directory holding initdb, pg_ctl, pgbench")
    p.add_argument(
        "--baseline-url", help="load this primary as the baseline instead of a local one"
    )
    p.add_argument("--target-url", help="the target's writer (PgBouncer) instead of a local one")
    p.add_argument("--target-reader-url", help="the target's reader (PgBouncer on the replica)")
    p.add_argument(
        "--workers",
        type=lambda text: _whole(text, least=0),
        default=0,
        help="run Locust as a master with this many workers on loopback (default 0: one process)",
    )
    p.add_argument(
        "--migrate-with",
        type=Path,
        help="build the target's layout with this plan's steps instead of --plan's own (for a "
        "plan whose migration fails, such as plans/as-written: its pooling on the layout the "
        "corrected plan builds)",
    )
    p.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help="rounds of baseline then target; each target is judged on the 95%% interval "
        "of its reduction over them (default 3)",
    )
    p.add_argument(
        "--reports", type=Path, default=Path("reports"), help="where reports go (reports/)"
    )
    p.set_defaults(func=cmd_compare)
    _add_tune(sub)
    return load
