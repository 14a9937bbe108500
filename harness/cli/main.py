"""`nova-harness`: the command line. The only place that prints verdict lines for humans and
exits the process; everything below raises from harness.errors / stack.errors."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import TargetUnreachable
from records.errors import HarnessError, InputError
from stack import local
from stack.errors import ConfigError, StackError, StackNotRunning, StackStartError
from stack.roles import StackOptions

if TYPE_CHECKING:
    from harness.soak.resume import Resume
    from harness.suites.base import CheckResult, Target

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INVALID, EXIT_UNREACHABLE, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 130)

Command = Callable[[argparse.Namespace], int]


def plural(count: int, noun: str) -> str:
    """ "1 stream", "5 streams"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _service_env(pairs: Sequence[str]) -> dict[str, str]:
    from harness.config.scenario import (
        SERVICE_SETTING,  # the names a scenario's stack.service_env takes
    )

    env, problems = {}, []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not SERVICE_SETTING.match(key):
            problems.append(f"--service-env {pair!r}: expected NOVA_NAME=value")
        else:
            env[key] = value
    if problems:
        raise InputError(problems, hint="see docs/service.md for the NOVA_* settings")
    return env


def cmd_stack_up(args: argparse.Namespace) -> int:
    options = StackOptions(
        run_dir=args.run_dir, instances=args.instances, standby=args.standby,
        restart=args.restart, jwt_algorithm=args.jwt_algorithm, api_port=args.api_port,
        http_port=args.http_port, rtmp_port=args.rtmp_port, postgres_port=args.postgres_port,
        redis_port=args.redis_port, service_env=_service_env(args.service_env),
        latency_proxy=tuple(r for r in args.latency_proxy.split(",") if r),
    )
    started = time.monotonic()
    state, reused = local.up(options)
    elapsed_s = time.monotonic() - started
    if args.json:
        print(json.dumps(local.status(args.run_dir), indent=2))
        return EXIT_OK
    verb = "already running (reused)" if reused else f"ready in {elapsed_s:.1f}s"
    print(f"stack {verb}: {args.run_dir}")
    for name, url in state.endpoints.items():
        print(f"  {name:<21} {url}")
    return EXIT_OK


def cmd_stack_down(args: argparse.Namespace) -> int:
    killed = local.down(args.run_dir)
    suffix = f" (killed directly: {', '.join(killed)})" if killed else ""
    print(f"stack stopped: {args.run_dir}{suffix}")
    return EXIT_OK


def cmd_stack_status(args: argparse.Namespace) -> int:
    report = local.status(args.run_dir)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"stack {report['status']}: {report['run_dir']}")
        for name, url in report["endpoints"].items():
            print(f"  {name:<21} {url}")
        for name, role in report["roles"].items():
            health = "healthy" if role["healthy"] else ("alive" if role["alive"] else "down")
            print(f"  {name:<17} pid {role['pid']!s:<8} port {role['port']!s:<6} {health}"
                  f"{'  restarts ' + str(role['restarts']) if role['restarts'] else ''}")
    return EXIT_OK if report["status"] == "ready" else EXIT_UNREACHABLE


def cmd_stack_logs(args: argparse.Namespace) -> int:
    path = local.log_path(args.run_dir, args.role)
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    for line in lines[-args.lines:]:
        print(line)
    if args.follow:
        with open(path, errors="replace") as handle:
            handle.seek(0, 2)
            while True:
                line = handle.readline()
                if line:
                    print(line, end="", flush=True)
                else:
                    time.sleep(0.2)
    return EXIT_OK


def cmd_stack_ctl(args: argparse.Namespace) -> int:
    reply = local.control(args.run_dir, args.op, args.role)
    role = reply["role"]
    print(f"{args.role}: {role['state']} (pid {role['pid']})")
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    from harness.auth.keys import minter_for

    minter = minter_for(run_dir=args.run_dir, secret_env=args.secret_env,
                        key_file=args.key_file, algorithm=args.algorithm)
    user_id = uuid.UUID(args.user) if args.user else None
    print(minter.mint(user_id, admin=args.admin, expires_in_s=args.expires_in))
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace) -> int:
    from harness.suites.smoke import run_smoke

    report = run_smoke(args.run_dir, viewers=args.viewers, publish_s=args.seconds)
    for line in report.lines():
        print(line)
    print(f"smoke: {'PASS' if report.passed else 'FAIL'}")
    return EXIT_OK if report.passed else EXIT_FAILED


def _check_target(args: argparse.Namespace) -> Target:
    """The local stack in --run-dir (its endpoints, keys, DSN), or --target with its options."""
    from harness.auth.keys import minter_for, stack_algorithm
    from harness.config.profile import load_profile
    from harness.suites.base import Target
    from stack.jwtkeys import secrets_dir
    from stack.state import read_state

    profile = load_profile(args.profile)
    minter = minter_for(run_dir=args.run_dir, secret_env=args.secret_env,
                        key_file=args.key_file)
    public_key = args.public_key_file.read_text() if args.public_key_file else None
    if args.target is None:
        endpoints = read_state(args.run_dir).endpoints
        if public_key is None and stack_algorithm(args.run_dir) == "RS256":
            public_key = (secrets_dir(args.run_dir) / "jwt_public.pem").read_text()
        return Target(endpoints["api_base"], endpoints["ws_base"], endpoints["rtmp_url"],
                      endpoints["hls_base"], endpoints["metrics_url"], profile, minter,
                      args.database_url or endpoints.get("monitor_database_url"),
                      args.redis_url or endpoints.get("monitor_redis_url"), public_key,
                      args.ca_file)
    problems = [f"--{name.replace('_', '-')} is needed with --target"
                for name in ("rtmp_url", "hls_base") if getattr(args, name) is None]
    if not (args.secret_env or args.key_file):
        problems.append("--secret-env or --key-file is needed with --target (to mint tokens)")
    if problems:
        raise InputError(problems, hint="see docs/checks.md")
    base = args.target.rstrip("/")
    return Target(base, "ws" + base.removeprefix("http"), args.rtmp_url, args.hls_base,
                  f"{base}{profile.paths.metrics}", profile, minter, args.database_url,
                  args.redis_url, public_key, args.ca_file)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.suites.runner import selected

    suites = selected([name for value in args.suite for name in value.split(",")])
    stack_started = False
    if args.target is None:
        _, reused = local.up(StackOptions(run_dir=args.run_dir))
        stack_started = not reused
    try:
        return _checks(args, suites)
    finally:
        if stack_started:
            local.down(args.run_dir)


def _checks(args: argparse.Namespace, suites: list[str]) -> int:
    from harness.suites.runner import exit_code, new_folder, run_suites, write_results

    target = _check_target(args)
    started = time.time()

    def show(result: CheckResult) -> None:
        print(f"  {result.status:<8} {result.suite:<9} {result.id:<26} {result.reason}",
              flush=True)

    print(f"checking {', '.join(suites)} against {target.api_base} (profile "
          f"{target.profile.name})")
    results = run_suites(target, suites, show)
    folder = new_folder(args.results, suites)
    write_results(folder, target, suites, results, started)
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIPPED")}
    print(f"checks: {'FAIL' if counts['FAIL'] else 'PASS'} ({counts['PASS']} passed, "
          f"{counts['FAIL']} failed, {counts['SKIPPED']} skipped of {len(results)})")
    print(f"report: {folder / 'report.html'}")
    return exit_code(results)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    mapping = {"duration": "duration", "viewers_per_stream": "viewers.per_stream",
               "streams": "streams.count", "target": "target.base_url", "profile": "profile",
               "api_rate": "api_clients.rate_per_s", "hls_share": "viewers.hls_share"}
    return {dotted: getattr(args, name) for name, dotted in mapping.items()
            if getattr(args, name, None) is not None}


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.chaos.schedule import check_experiments
    from harness.config.scenario import load_scenario

    problems: list[str] = []
    for path in args.files:
        try:
            scenario, profile = load_scenario(path, _overrides(args))
            problems += check_experiments(scenario.chaos, path.parent,
                                          standby=scenario.stack.standby,
                                          proxied=tuple(scenario.stack.latency_proxy),
                                          local_target=scenario.target.stack == "local")
            faults = f", {plural(len(scenario.chaos), 'chaos experiment')}" \
                if scenario.chaos else ""
            print(f"{path}: ok ({plural(scenario.planned_viewers, 'viewer')}, "
                  f"{plural(scenario.streams.count, 'stream')}, "
                  f"{scenario.load.total_s:.0f} s, profile {profile.name}{faults})")
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems, hint="see docs/scenarios.md for every field")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, args.scenario, _overrides(args), args.results)


def cmd_soak(args: argparse.Namespace) -> int:
    """`run` for a scenario with a `soak:` section, or --resume of one that died."""
    from harness.config.scenario import load_scenario
    from harness.soak.resume import prepare_resume

    if args.resume is None:
        if args.scenario is None:
            raise InputError(["give a soak SCENARIO or --resume RESULTS_DIR"])
        scenario, _ = load_scenario(args.scenario, _overrides(args))
        if scenario.soak is None:
            raise InputError([f"{args.scenario}: no `soak:` section"],
                             hint="see scenarios/soak-4h.yaml and docs/soak.md")
        return _run(args, args.scenario, _overrides(args), args.results)
    resume = prepare_resume(args.resume)
    overrides: dict[str, object] = {**resume.overrides, "duration": resume.remaining_s}
    print(f"resuming {resume.run_id}: {resume.remaining_s:.0f} s of {resume.planned_s:.0f} s "
          f"left, gap of {resume.gaps[-1]['end'] - resume.gaps[-1]['start']:.0f} s recorded")
    return _run(args, resume.scenario_path, overrides, resume.results_dir.parent, resume)


def _run(args: argparse.Namespace, scenario: Path, overrides: dict[str, object],
         results_root: Path, resume: Resume | None = None) -> int:
    from harness.cli.progress import Progress
    from harness.run.engine import Run, RunOptions

    run = Run(RunOptions(scenario_path=scenario, overrides=overrides,
                         results_root=results_root, workers=args.workers, web_port=args.web,
                         stack_dir=args.run_dir, progress=not args.quiet,
                         allow_targets=tuple(args.allow_target), resume=resume))
    for line in run.chaos_plan():
        print(f"chaos will run {line}", flush=True)
    print(f"run {run.run_id}: {plural(run.scenario.planned_viewers, 'viewer')} on "
          f"{plural(run.scenario.streams.count, 'stream')} for "
          f"{run.scenario.load.total_s:.0f} s -> {run.results_dir}", flush=True)
    with Progress(enabled=not args.quiet) as progress:
        outcome = run.execute(show=progress)
    manifest = outcome.manifest
    print(f"run {outcome.status}: {manifest['viewers_connected']}/"
          f"{manifest['planned']['viewers']} viewers connected, broadcasters "
          f"{manifest['broadcasters']}, {manifest['rows']['samples']} samples; "
          f"generator saturated: {manifest['validity']['saturated']}")
    print(f"results: {outcome.results_dir}")
    code = _print_analysis(outcome.results_dir, args.thresholds)
    return EXIT_INTERRUPTED if outcome.status == "aborted" else code


def _print_analysis(results_dir: Path, thresholds: Path | None,
                    out_dir: Path | None = None) -> int:
    from analysis.analyze import analyze
    from analysis.judge import label

    analysis = analyze(results_dir, thresholds, out_dir=out_dir)
    verdict = analysis.verdict
    for result in verdict.results:
        if result.status != "PASS":
            print(f"  {label(result.status):<14} {result.id}: {result.reason}")
    for problem in verdict.validity:
        print(f"  invalid run: {problem}")
    counts = {s: sum(r.status == s for r in verdict.results)
              for s in ("PASS", "FAIL", "INCONCLUSIVE", "NOT_APPLICABLE")}
    print(f"verdict: {verdict.status} ({counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['INCONCLUSIVE']} inconclusive, {counts['NOT_APPLICABLE']} not applicable "
          f"of {len(verdict.results)} thresholds)")
    print(f"report: {analysis.report_html}")
    return verdict.exit_code


def cmd_analyze(args: argparse.Namespace) -> int:
    if not (args.results_dir / "manifest.json").exists():
        raise InputError([f"{args.results_dir}: no manifest.json — not a results folder"])
    return _print_analysis(args.results_dir, args.thresholds,
                           args.results_dir / "interim" if args.interim else None)


def cmd_status(args: argparse.Namespace) -> int:
    from records.recorder import effective_status

    path = args.results_dir / "status.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError([f"{path}: cannot read it ({exc})"],
                         hint="a run writes status.json every 5 s once it has started") from None
    written = document.get("status")
    document["status"] = effective_status(document)
    if document["status"] != written:
        document["status_written"] = written  # a killed run's last word
    print(json.dumps(document, indent=1))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from analysis.compare import compare

    for folder in (args.baseline, args.candidate):
        if not (folder / "manifest.json").exists():
            raise InputError([f"{folder}: no manifest.json — not a results folder"])
    rows = compare(args.baseline, args.candidate)
    print(f"{'kind':<15}{'name':<24}{'median ms':>20}{'p':>9}{'p95 ms':>20}{'p':>9}  verdict")
    for r in rows:
        print(f"{r.kind:<15}{r.name:<24}{r.baseline_median_ms:>9.2f} → "
              f"{r.candidate_median_ms:<8.2f}{r.p_value:>9.2g}{r.baseline_p95_ms:>9.2f} → "
              f"{r.candidate_p95_ms:<8.2f}{r.p_value_p95:>9.2g}  {r.verdict}")
    worse = [r for r in rows if r.worse]
    print(f"compare: {len(worse)} of {len(rows)} latencies significantly worse")
    return EXIT_FAILED if worse else EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from harness.run.engine import worker_main

    return worker_main(args.master, args.index)


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", help="total run length, e.g. 2m (re-sizes load.hold)")
    parser.add_argument("--viewers-per-stream", type=int,
                        help="WebSocket viewers on each stream (viewers.per_stream)")
    parser.add_argument("--streams", type=int, help="number of streams")
    parser.add_argument("--target", help="API base URL of a deployed target (not the local stack)")
    parser.add_argument("--profile", help="nova-doc, nova-served or a profile YAML path")
    parser.add_argument("--api-rate", type=float, help="API arrivals per second")
    parser.add_argument("--hls-share", type=float, help="share of viewers that play HLS, 0..1")


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, default=local.default_run_dir(),
                        help="the stack's private folder (default: $NOVA_STACK_DIR or "
                             "/var/tmp/nova-stack-UID)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nova-harness",
                                     description="Load, soak and failover harness for Nova "
                                                 "Streaming (docs/cli.md).")
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the local reference stack").add_subparsers(
        dest="stack_command", required=True)
    p = stack.add_parser("up", help="start the reference stack (or reuse the running one)")
    _add_run_dir(p)
    p.add_argument("--instances", type=int, default=1,
                   help="service instances; with 2+, nginx proxies HTTP and WS to all (default 1)")
    p.add_argument("--standby", action="store_true",
                   help="also run a streaming-replica PostgreSQL standby (for failover)")
    p.add_argument("--restart", default="always", choices=["always", "never"],
                   help="restart a service instance that dies (default always)")
    p.add_argument("--jwt-algorithm", default="HS256", choices=["HS256", "RS256"],
                   help="how the service verifies tokens (default HS256)")
    for part in ("api", "http", "rtmp", "postgres", "redis"):
        p.add_argument(f"--{part}-port", type=int, default=0,
                       help=f"fixed {part} port on 127.0.0.1 (default: a free one)")
    p.add_argument("--service-env", action="append", default=[], metavar="NOVA_NAME=VALUE",
                   help="extra service setting, repeatable (docs/service.md)")
    p.add_argument("--latency-proxy", default="", metavar="ROLE[,ROLE]",
                   help="route the service's postgres and/or redis traffic through a "
                        "latency-injecting proxy (for network faults; docs/chaos.md)")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.set_defaults(func=cmd_stack_up)

    p = stack.add_parser("down", help="stop everything the stack started")
    _add_run_dir(p)
    p.set_defaults(func=cmd_stack_down)

    p = stack.add_parser("status", help="endpoints and roles (exit 4 when not ready)")
    _add_run_dir(p)
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.set_defaults(func=cmd_stack_status)

    p = stack.add_parser("logs", help="print a role's log (supervisor, postgres, api-1, …)")
    _add_run_dir(p)
    p.add_argument("role", nargs="?", default="supervisor",
                   help="whose log: supervisor (default), api-1, postgres, redis, nginx, …")
    p.add_argument("-n", "--lines", type=int, default=50, help="last lines shown (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(func=cmd_stack_logs)

    ctl_help = {"start": "start one role of the running stack",
                "stop": "stop one role of the running stack",
                "restart": "restart one role of the running stack",
                "promote": "promote a PostgreSQL standby role to primary",
                "reseed": "rebuild a PostgreSQL role as a standby of the current primary"}
    for op, text in ctl_help.items():
        p = stack.add_parser(op, help=text)
        _add_run_dir(p)
        p.add_argument("role", help="a role name from `stack status` (e.g. redis, api-1)")
        p.set_defaults(func=cmd_stack_ctl, op=op)

    p = sub.add_parser("token", help="print a valid bearer token")
    _add_run_dir(p)
    p.add_argument("--user", help="user UUID for `sub` (default: a new one)")
    p.add_argument("--admin", action="store_true", help="role=admin")
    p.add_argument("--expires-in", type=float, default=3600, help="seconds (default 3600)")
    p.add_argument("--secret-env", help="sign with the HS256 secret in this environment variable")
    p.add_argument("--key-file", type=Path, help="sign with this RS256 private key (PEM)")
    p.add_argument("--algorithm", choices=["HS256", "RS256"],
                   help="algorithm for the local stack's keys (default: what the stack uses)")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("validate", help="check scenario files; every problem at once (exit 2)")
    p.add_argument("files", nargs="+", type=Path, help="scenario YAML files")
    _add_overrides(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a scenario and leave results/<run-id>/")
    p.add_argument("scenario", type=Path, help="scenario YAML (scenarios/*.yaml)")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("soak", help="run a soak scenario (hours; interim verdicts, status.json)"
                                    " or --resume one that died")
    p.add_argument("scenario", type=Path, nargs="?",
                   help="soak scenario YAML (e.g. scenarios/soak-4h.yaml); not with --resume")
    p.add_argument("--resume", type=Path, metavar="RESULTS_DIR",
                   help="continue this aborted or killed soak into the same folder")
    _add_run_options(p)
    p.set_defaults(func=cmd_soak)
    _add_analysis_commands(sub)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    _add_overrides(p)
    _add_run_dir(p)
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder for results/<run-id>/ (default ./results)")
    p.add_argument("--workers", type=int, default=0,
                   help="local Locust worker processes (default 0: one process)")
    p.add_argument("--web", type=int, metavar="PORT", help="serve Locust's web UI on this port")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.add_argument("--thresholds", type=Path,
                   help="threshold file (default: the scenario's, else checklist-staging)")
    p.add_argument("--allow-target", action="append", default=[], metavar="HOST",
                   help="let the scenario's chaos experiments break this host (repeatable; "
                        "the local stack is always allowed)")


def _add_analysis_commands(sub: Any) -> None:
    """analyze, compare, worker, check and smoke."""
    p = sub.add_parser("analyze", help="judge a results folder again (verdict, charts, reports)")
    p.add_argument("results_dir", type=Path, help="a results/<run-id>/ folder")
    p.add_argument("--thresholds", type=Path,
                   help="threshold file (default: the scenario's, else checklist-staging)")
    p.add_argument("--interim", action="store_true",
                   help="write the verdict, reports and charts to RESULTS_DIR/interim/ (what a "
                        "running soak does every report_every)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("status", help="where a run or soak is (status.json), and whether the "
                                      "process writing it still lives")
    p.add_argument("results_dir", type=Path, help="a results/<run-id>/ folder")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("compare", help="latencies significantly worse in CANDIDATE (exit 1)")
    p.add_argument("baseline", type=Path, help="results folder of the reference run")
    p.add_argument("candidate", type=Path, help="results folder of the run under judgement")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("worker", help="join a run's master as a Locust worker")
    p.add_argument("--master", required=True, help="HOST:PORT of the master")
    p.add_argument("--index", type=int, default=1, help="worker number (spreads streams)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("check", help="checklist suites: one PASS/FAIL/SKIPPED line per "
                                     "checklist line (docs/checks.md)")
    p.add_argument("--suite", action="append", required=True, metavar="NAME",
                   help="verify, api, e2e, access, security, or all (repeat or "
                        "comma-separate)")
    _add_run_dir(p)
    p.add_argument("--target", help="base URL of a deployed target instead of the local stack")
    p.add_argument("--rtmp-url", help="with --target: rtmp://host:port/app")
    p.add_argument("--hls-base", help="with --target: base URL of the HLS server")
    p.add_argument("--profile", default="nova-doc", help="target profile (name or YAML path)")
    p.add_argument("--secret-env", help="variable holding the HS256 secret (with --target)")
    p.add_argument("--key-file", type=Path, help="RS256 private key PEM (with --target)")
    p.add_argument("--public-key-file", type=Path,
                   help="the target's RS256 public key (PEM), for the HS/RS confusion check")
    p.add_argument("--ca-file", help="CA certificate(s) an https target's chain ends in")
    p.add_argument("--database-url", help="PostgreSQL DSN for the database checks")
    p.add_argument("--redis-url", help="Redis URL for the Redis check")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder for the results (default: results/)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("smoke", help="broadcast + viewer smoke against the running local stack")
    _add_run_dir(p)
    p.add_argument("--viewers", type=int, default=3, help="WebSocket viewers (default 3)")
    p.add_argument("--seconds", type=float, default=6.0, help="how long to publish")
    p.set_defaults(func=cmd_smoke)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    if func in (cmd_run, cmd_soak, cmd_worker):
        from harness.runtime.allocator import choose_arrow_pool

        choose_arrow_pool()  # before anything imports pyarrow (harness/runtime/allocator.py)
    try:
        return func(args)
    except KeyboardInterrupt:
        print("nova-harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InputError as exc:
        for problem in exc.problems:
            print(f"nova-harness: error: {problem}", file=sys.stderr)
        if exc.hint:
            print(f"nova-harness: hint: {exc.hint}", file=sys.stderr)
        return EXIT_INPUT
    except (ConfigError, ValueError) as exc:
        print(f"nova-harness: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (StackStartError, StackNotRunning, TargetUnreachable) as exc:
        print(f"nova-harness: {exc}", file=sys.stderr)
        hint = exc.hint if isinstance(exc, TargetUnreachable) else None
        if hint:
            print(f"nova-harness: hint: {hint}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (HarnessError, StackError) as exc:
        print(f"nova-harness: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
