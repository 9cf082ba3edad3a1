"""The ``harness`` command: progress on stderr, results on stdout, exit codes for CI.

Exit codes: 0 the plan is safe (or the command did its job), 1 the plan was
checked and has findings, 2 usage or infrastructure error, 75 a step could not
get its locks within the budget (nothing of it changed; retry later), 130
interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import psycopg
from psycopg.conninfo import conninfo_to_dict

from harness.cluster import PROVIDERS, start_cluster
from harness.cluster.clone import add_clone_option, clone_from_args
from harness.cluster.pgbouncer_builds import choose_images, pgbouncer_option
from harness.dsn import redact
from harness.errors import HarnessError, InfrastructureError, UsageError
from harness.invariants import Check
from harness.plan import Plan, load_plan
from harness.report import ReportFiles, render_reports, write_reports
from harness.runner import StepOutcome

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def progress(message: str) -> None:
    print(f"harness: {redact(message)}", file=sys.stderr, flush=True)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def _role_login(text: str) -> tuple[str, str]:
    role, eq, dsn = text.partition("=")
    example = "e.g. app_rw=postgresql://app_rw@db:6432/shop"
    if not eq or not role or not dsn:
        raise argparse.ArgumentTypeError(f"{redact(text)}: expected ROLE=DSN, {example}")
    try:
        user = conninfo_to_dict(dsn).get("user")
    except psycopg.ProgrammingError as exc:
        raise argparse.ArgumentTypeError(f"{redact(dsn)}: not a connection string: {exc}") from None
    if user is not None and user != role:
        raise argparse.ArgumentTypeError(
            f"--login {role}=…: the DSN logs in as {user}, not {role}; {example}"
        )
    return role, dsn


def _existing_dump(text: str) -> Path:
    """A dump file, or a ``pg_dump -Fd`` directory (the loader checks it holds toc.dat)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return path


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="local",
        help="local: this machine's PostgreSQL binaries (default); docker: testcontainers; "
        "external: DATABASE_URL and DATABASE_READONLY_URL",
    )
    parser.add_argument("--pg-bin", help="directory holding initdb, pg_ctl, pg_basebackup")
    add_clone_option(parser)
    add_docker_options(parser)


def add_docker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image",
        help="docker provider: the image of every node (default: the one harness image build "
        "makes; an official postgres image runs the servers, not PgBouncer)",
    )
    parser.add_argument(
        "--docker-network",
        choices=("host", "bridge"),
        help="docker provider: host (default: each container on its own 127.0.0.1 port) or "
        "bridge (a private network, ports published on 127.0.0.1)",
    )
    parser.add_argument("--pg-version", type=int, help="PostgreSQL major: docker 15 or 17")
    bouncer = "PgBouncer MAJOR.MINOR: docker 1.18 or 1.24; local: this machine's"
    parser.add_argument("--pgbouncer", type=pgbouncer_option, metavar="VERSION", help=bouncer)


def docker_options(args: argparse.Namespace, plan: Plan | None = None) -> dict[str, str]:
    """The docker options given, for start_cluster; none for other providers."""
    # Refuses the versions that cannot run, before any server starts.
    image, bouncer = choose_images(args, plan)
    if args.provider != "docker":
        return {}
    given = {"image": image, "pgbouncer_image": bouncer, "network": args.docker_network}
    return {k: v for k, v in given.items() if v is not None}


def add_legacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=_positive, default=1, help="multiply the legacy data (default 1)"
    )
    parser.add_argument(
        "--legacy",
        type=_existing_dump,
        help="start from this plain SQL dump, pg_dump custom or tar archive, or pg_dump -Fd "
        "directory instead of the built-in legacy database",
    )


def _clients(text: str) -> int:
    from harness.plan.workload import MAX_CLIENTS

    value = _positive(text)
    if value > MAX_CLIENTS:
        # Both PgBouncers and the servers' max_connections are sized for the plan's pools.
        raise argparse.ArgumentTypeError(f"at most {MAX_CLIENTS} clients, got {value}")
    return value


def add_traffic_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--traffic-clients",
        type=_clients,
        help="concurrent clients of the application's workload during the gate "
        "(default: the plan's [workload] clients, else 16; at most 64)",
    )
    parser.add_argument(
        "--no-traffic",
        action="store_true",
        help="gate without the application's traffic (and without creating the plan's "
        "roles beforehand)",
    )


# -- up ------------------------------------------------------------------------------
# How often `harness up` looks at its processes: a dead PgBouncer is back within it.
WATCH_INTERVAL = 0.2


def _wait_for_signal(*, watch: Callable[[], list[str]] = list) -> int:
    """Block until SIGINT or SIGTERM, reporting what ``watch`` finds every so often."""
    stop = threading.Event()
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    while not stop.wait(WATCH_INTERVAL):
        for message in watch():
            progress(message)
    return received[0]


def cmd_up(args: argparse.Namespace) -> int:
    from harness.legacy import seed
    from harness.runner import Runner

    if args.migrated and args.plan is None:
        raise UsageError("--migrated applies a plan: give it with --plan DIR")
    plan = load_plan(args.plan, legacy=args.legacy) if args.plan is not None else None
    docker = docker_options(args, plan)
    clone = clone_from_args(args, plan, progress=progress)
    with start_cluster(
        args.provider,
        pg_bin=args.pg_bin,
        progress=progress,
        image=docker.get("image"),
        network=docker.get("network"),
        pgbouncer_image=docker.get("pgbouncer_image"),
        poolers=plan.pgbouncer if plan is not None else None,
        clone=clone,
    ) as cluster:
        legacy = args.legacy or (plan.legacy if plan is not None else None)
        if clone is None:  # a clone holds its database already
            progress(f"seeding the legacy database (scale {args.scale})")
            done = seed(
                cluster.endpoints.primary, scale=args.scale, legacy=legacy, create_roles=True
            )
            progress(f"seeded {sum(done.rows.values()):,} rows in {done.seconds:.2f} sec")
        if plan is not None and args.migrated:
            with Runner(plan, cluster.endpoints.primary, progress=progress) as runner:
                runner.migrate()
            cluster.allow_users(plan.layout.roles)
        cluster.wait_for_replica()
        for key, value in cluster.endpoints.as_env().items():
            print(f"{key}={value}", flush=True)
        progress("up; stop with Ctrl-C or SIGTERM")
        signum = _wait_for_signal(watch=cluster.watch)
        progress(f"received {signal.Signals(signum).name}: tearing down")
    return 0


# -- seed ----------------------------------------------------------------------------
def cmd_seed(args: argparse.Namespace) -> int:
    from harness.legacy import seed

    report = seed(args.dsn, scale=args.scale, legacy=args.legacy, progress=progress)
    for table, rows in sorted(report.rows.items()):
        print(f"{table}\t{rows}")
    progress(f"seeded {sum(report.rows.values()):,} rows in {report.seconds:.2f} sec")
    return 0


# -- plans ---------------------------------------------------------------------------
def _emit(check: Check) -> None:
    print(redact(str(check)), flush=True)


def _plan(args: argparse.Namespace) -> Plan:
    return load_plan(args.plan, legacy=getattr(args, "legacy", None))


def cmd_gate(args: argparse.Namespace) -> int:
    from functools import partial

    from harness.gate import run_gate
    from harness.repeat import gate_repeatedly
    from harness.report.plots import warm_up
    from harness.verdict import verdict_line

    # The page plots the traffic timeline: its plotting library loads while the gate runs.
    warm_up()
    plan = _plan(args)
    gate = partial(
        run_gate,
        plan,
        provider=args.provider,
        pg_bin=args.pg_bin,
        legacy=args.legacy,
        scale=args.scale,
        emit=_emit,
        progress=progress,
        traffic_clients=args.traffic_clients,
        traffic=not args.no_traffic,
        cluster_options=docker_options(args, plan),
        clone_from=args.clone_from,
    )
    if args.repeat is not None:
        return gate_repeatedly(gate, args=args, progress=progress)
    report = gate()
    report.require_all = args.require_all
    files = write_reports(report.to_json(), directory=args.reports)
    print(verdict_line(report), flush=True)
    _reports_written(files)
    return report.exit_code


def _reports_written(files: ReportFiles) -> None:
    progress(
        f"reports written to {files.gate_json.parent}/: gate.json, junit.xml, index.html "
        f"({files.html_bytes:,} bytes) in {files.seconds:.2f} sec"
    )


# -- report --------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    _reports_written(render_reports(args.reports))
    return 0


def _print_outcomes(outcomes: list[StepOutcome], *, dry_run: bool) -> None:
    for outcome in outcomes:
        step = outcome.step
        if dry_run:
            print(f"would apply {step.label} ({len(step.statements)} statements)")
            for statement in step.statements:
                print(f"    line {statement.line}: {statement.summary}")
        else:
            print(f"applied {step.label} in {outcome.seconds:.2f} sec")
    if not outcomes:
        print("nothing to do")


def cmd_migrate(args: argparse.Namespace) -> int:
    from harness.runner import Runner, take_backup, verify_backup

    plan = _plan(args)
    with Runner(plan, args.dsn, progress=progress) as runner:
        if not args.dry_run:
            runner.claim()  # before the backup: one run at a time, from its first step
        if not args.dry_run and runner.pending() and not args.no_backup:
            backup = take_backup(args.dsn, directory=args.reports / "backups")
            problems = verify_backup(args.dsn, backup)
            if problems:
                raise InfrastructureError(
                    f"the backup {backup.path} does not restore to the same database, so "
                    "nothing was migrated:\n" + "\n".join(f"  {p}" for p in problems)
                )
            progress(f"backup {backup.path} ({backup.bytes:,} bytes) restores identically")
        _print_outcomes(runner.migrate(dry_run=args.dry_run), dry_run=args.dry_run)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from harness.runner import Runner

    with Runner(_plan(args), args.dsn, progress=progress) as runner:
        outcomes = runner.rollback(dry_run=args.dry_run, accept_changed=args.accept_changed)
        _print_outcomes(outcomes, dry_run=args.dry_run)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from harness.catalog import Fingerprint
    from harness.cluster import Endpoints
    from harness.cluster.external import connect_external
    from harness.gate import GateReport, verify_database
    from harness.invariants.acting import Login

    baseline = None
    if args.baseline is not None:
        baseline = Fingerprint.from_json(json.loads(args.baseline.read_text()))
    cluster = connect_external(
        writer=args.dsn, reader=args.reader_dsn, writer_name="--dsn", reader_name="--reader-dsn"
    )
    endpoints: Endpoints = cluster.endpoints
    report = GateReport(plan=_plan(args).name, context={"dsn": redact(args.dsn)})
    logins = {role: Login(dsn, "with its --login") for role, dsn in args.login or ()}
    verify_database(
        _plan(args),
        endpoints,
        baseline=baseline,
        wait_for_replica=cluster.wait_for_replica if cluster.has_streaming_replica else None,
        emit=_emit,
        report=report,
        login=logins.get,
    )
    report.write(args.reports / "verify.json")
    return report.exit_code


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from harness.catalog import fingerprint
    from harness.databases import connect

    with connect(args.dsn) as conn:
        fp = fingerprint(conn, data=not args.no_data)
    print(json.dumps(fp.to_json(), indent=1, sort_keys=True))
    return 0


# -- image ---------------------------------------------------------------------------
def cmd_image_build(args: argparse.Namespace) -> int:
    from harness.cluster.docker_engine import engine
    from harness.cluster.docker_image import build_image

    with engine(timeout=600) as client:
        result = build_image(
            client, pg_version=args.pg_version, base=args.base, force=args.force, progress=progress
        )
    state = "cached" if result.cached else f"built on {result.base}"
    print(f"{result.image}\t{state}\t{result.seconds:.1f} sec", flush=True)
    return 0


def add_image_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser(
        "image",
        help="the docker provider's image",
        description="The image the docker provider runs.",
    )
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    build = image_sub.add_parser(
        "build",
        help="build PostgreSQL 15 and PgBouncer from Debian's packages, unless already built",
        description="Build the docker provider's image (tagged with its Dockerfile's content "
        "hash, so an unchanged Dockerfile is not built again). The base is "
        "debian:bookworm-slim, or a bookworm made with mmdebstrap where no registry answers.",
    )
    build.add_argument("--base", help="build on this image instead")
    build.add_argument("--pg-version", type=int, default=15, help="15 (bookworm) or 17 (trixie)")
    build.add_argument("--force", action="store_true", help="build even when the tag exists")
    build.set_defaults(func=cmd_image_build)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="pgcutover: prove a PostgreSQL schema migration safe before cutover",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="start a primary, a streaming replica and PgBouncer, seeded with the legacy database",
        description="Start a cluster, load the legacy database, print its connection strings "
        "and stay up until SIGINT or SIGTERM.",
    )
    add_cluster_options(up)
    add_legacy_options(up)
    up.add_argument(
        "--plan",
        type=Path,
        help="run the PgBouncers with this plan's [pgbouncer] settings and seed its legacy dump",
    )
    up.add_argument(
        "--migrated",
        action="store_true",
        help="apply the --plan's migration before printing the connection strings: the "
        "target architecture, to point a load test at",
    )
    up.set_defaults(func=cmd_up)

    seed = sub.add_parser(
        "seed",
        help="load the legacy database into an existing, empty database",
        description="Load the legacy database into an existing, empty database.",
    )
    seed.add_argument("--dsn", required=True, help="connection string of the empty database")
    add_legacy_options(seed)
    seed.set_defaults(func=cmd_seed)

    def plan_parser(name: str, help: str, func: Command) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        p.add_argument("--plan", required=True, type=Path, help="the plan directory")
        p.add_argument(
            "--reports", type=Path, default=Path("reports"), help="where reports go (reports/)"
        )
        p.set_defaults(func=func)
        return p

    gate = plan_parser(
        "gate",
        "start a cluster, seed it, then migrate, verify, roll back, verify and migrate again; "
        "exit 0 when the plan is safe, 1 with findings",
        cmd_gate,
    )
    add_cluster_options(gate)
    add_legacy_options(gate)
    add_traffic_options(gate)
    from harness.verdict import add_verdict_options

    add_verdict_options(gate)

    for name, help, func in (
        (
            "migrate",
            "apply a plan's pending steps to a database, after a verified backup",
            cmd_migrate,
        ),
        ("rollback", "roll back a plan's applied steps, newest first", cmd_rollback),
    ):
        p = plan_parser(name, help, func)
        p.add_argument("--dsn", required=True, help="the primary's connection string")
        p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
        if name == "migrate":
            p.add_argument("--no-backup", action="store_true", help="skip the pg_dump backup")
        else:
            p.add_argument(
                "--accept-changed",
                action="store_true",
                help="roll back even steps whose up file changed since they were applied, "
                "with the down files as they are now",
            )

    verify = plan_parser(
        "verify", "check a migrated database against the plan's layout and privileges", cmd_verify
    )
    verify.add_argument("--dsn", required=True, help="the primary's connection string")
    verify.add_argument("--reader-dsn", help="a streaming replica to compare with the primary")
    verify.add_argument(
        "--baseline",
        type=_existing_file,
        help="a fingerprint taken before the migration (harness fingerprint): adds the "
        "nothing-lost, tables-intact and sequences checks",
    )
    verify.add_argument(
        "--login",
        action="append",
        type=_role_login,
        metavar="ROLE=DSN",
        help="a connection string that logs in as ROLE (its password in the DSN or in "
        "~/.pgpass), straight to the server: a pooler may hand out a session opened before "
        "the migration. privileges.tried then tries ROLE through it rather than by SET ROLE; "
        "repeatable",
    )

    report = sub.add_parser(
        "report",
        help="render index.html and junit.xml again from reports/gate.json",
        description="Render index.html and junit.xml again from the gate.json in --reports, "
        "with the load comparison in load/summary.json beside it when there is one.",
    )
    report.add_argument(
        "--reports", type=Path, default=Path("reports"), help="where gate.json is (reports/)"
    )
    report.set_defaults(func=cmd_report)

    from harness.monitor.command import add_parser as add_status_parser

    add_status_parser(sub)

    from harness.load.command import add_parser as add_load_parser

    add_load_parser(sub)

    fp = sub.add_parser(
        "fingerprint",
        help="print a database's structural fingerprint and data checksums as JSON",
        description="Print a database's structural fingerprint and data checksums as JSON.",
    )
    fp.add_argument("--dsn", required=True)
    fp.add_argument("--no-data", action="store_true", help="structure only, no checksums")
    fp.set_defaults(func=cmd_fingerprint)
    add_image_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C: what CI sends to cancel a job.

    A KeyboardInterrupt so that psycopg cancels the running statement on the
    server and every ``with`` block (transactions, clusters) unwinds as for Ctrl-C.
    """


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return func(args)
    except HarnessError as exc:
        print(f"harness: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:
        # A server error nobody turned into a finding is the harness failing, not the plan.
        print(f"harness: error: the server refused: {redact(str(exc)).strip()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            print(
                "harness: terminated (SIGTERM): the running step, if any, was cancelled and "
                "rolled back; run the command again to go on",
                file=sys.stderr,
            )
            return 128 + signal.SIGTERM
        print("harness: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
