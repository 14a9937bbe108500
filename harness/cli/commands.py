"""The commands of `nova-harness`, one function each (`cmd_*`), taking the parsed arguments
and returning the exit code; they raise from the exception tree and harness/cli/main.py
turns that into messages and exit codes."""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from records.errors import InputError
from stack import local
from stack.roles import StackOptions

if TYPE_CHECKING:
    from harness.soak.resume import Resume
    from harness.suites.base import CheckResult, Target

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INVALID, EXIT_UNREACHABLE, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 130)

Command = Callable[[argparse.Namespace], int]
MAX_EXAMPLES = 500  # generated requests per operation and kind: a bound, not a target


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
        prometheus=args.prometheus, analytics=args.analytics, listen=args.listen,
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
    from harness.suites.base import ContractOptions, Target
    from stack.jwtkeys import secrets_dir
    from stack.state import read_state

    profile = load_profile(args.profile)
    minter = minter_for(run_dir=args.run_dir, secret_env=args.secret_env,
                        key_file=args.key_file)
    contract = ContractOptions(str(args.openapi) if args.openapi else None, args.seed,
                               args.examples)
    grafana_token = os.environ.get(args.grafana_token_env) if args.grafana_token_env else None
    watchers: dict[str, str | None] = {
        "grafana_url": args.grafana_url, "grafana_token": grafana_token,
        "clickhouse_password": os.environ.get(args.clickhouse_password_env)
        if args.clickhouse_password_env else None}
    public_key = args.public_key_file.read_text() if args.public_key_file else None
    if args.target is None:
        endpoints = read_state(args.run_dir).endpoints
        if public_key is None and stack_algorithm(args.run_dir) == "RS256":
            public_key = (secrets_dir(args.run_dir) / "jwt_public.pem").read_text()
        return Target(endpoints["api_base"], endpoints["ws_base"], endpoints["rtmp_url"],
                      endpoints["hls_base"], endpoints["metrics_url"], profile, minter,
                      args.database_url or endpoints.get("monitor_database_url"),
                      args.redis_url or endpoints.get("monitor_redis_url"), public_key,
                      args.ca_file, contract,
                      args.prometheus_url or endpoints.get("prometheus_url"),
                      kafka_bootstrap=args.kafka_bootstrap or endpoints.get("kafka_bootstrap"),
                      clickhouse_url=args.clickhouse_url or endpoints.get("clickhouse_url"),
                      **watchers)
    problems = [f"--{name.replace('_', '-')} is needed with --target"
                for name in ("rtmp_url", "hls_base") if getattr(args, name) is None]
    if not (args.secret_env or args.key_file):
        problems.append("--secret-env or --key-file is needed with --target (to mint tokens)")
    if problems:
        raise InputError(problems, hint="see docs/checks.md")
    base = args.target.rstrip("/")
    return Target(base, "ws" + base.removeprefix("http"), args.rtmp_url, args.hls_base,
                  f"{base}{profile.paths.metrics}", profile, minter, args.database_url,
                  args.redis_url, public_key, args.ca_file, contract, args.prometheus_url,
                  kafka_bootstrap=args.kafka_bootstrap, clickhouse_url=args.clickhouse_url,
                  **watchers)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.suites.runner import selected

    problems = _check_option_problems(args)
    try:
        suites = selected([name for value in args.suite for name in value.split(",")])
    except InputError as exc:
        raise InputError(exc.problems + problems, exc.hint) from None
    if problems:
        raise InputError(problems, hint="see docs/checks.md (the contract suite)")
    stack_started = False
    if args.target is None:
        _, reused = local.up(StackOptions(run_dir=args.run_dir))
        stack_started = not reused
    try:
        return _checks(args, suites)
    finally:
        if stack_started:
            local.down(args.run_dir)


def _check_option_problems(args: argparse.Namespace) -> list[str]:
    problems = []
    if args.grafana_url and not (args.grafana_token_env and
                                 os.environ.get(args.grafana_token_env)):
        problems.append("--grafana-url needs --grafana-token-env naming a variable that holds "
                        "a Grafana API token")
    if not 1 <= args.examples <= MAX_EXAMPLES:
        problems.append(f"--examples {args.examples}: must be 1..{MAX_EXAMPLES}")
    if args.openapi is not None and not args.openapi.is_file():
        problems.append(f"--openapi {args.openapi}: no such file")
    return problems


def _checks(args: argparse.Namespace, suites: list[str]) -> int:
    from analysis import check_report
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
    check_report.write(folder)
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIPPED")}
    print(f"checks: {'FAIL' if counts['FAIL'] else 'PASS'} ({counts['PASS']} passed, "
          f"{counts['FAIL']} failed, {counts['SKIPPED']} skipped of {len(results)})")
    print(f"report: {folder / 'report.html'}")
    return exit_code(results)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    mapping = {"duration": "duration", "viewers_per_stream": "viewers.per_stream",
               "streams": "streams.count", "target": "target.base_url", "profile": "profile",
               "api_rate": "api_clients.rate_per_s", "hls_share": "viewers.hls_share",
               "metrics_port": "metrics.port", "metrics_host": "metrics.host"}
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
                                          local_target=scenario.target.stack == "local",
                                          analytics=scenario.stack.analytics)
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
    overrides: dict[str, object] = {**resume.overrides, "duration": resume.remaining_s,
                                    **{k: v for k, v in _overrides(args).items()
                                       if k.startswith("metrics.")}}
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
                         allow_targets=tuple(args.allow_target), resume=resume,
                         master_bind=args.master_bind, expect_workers=args.expect_workers,
                         join_timeout_s=args.join_timeout,
                         announce=lambda line: print(line, flush=True)))
    for line in run.chaos_plan():
        print(f"chaos will run {line}", flush=True)
    print(f"run {run.run_id}: {plural(run.scenario.planned_viewers, 'viewer')} on "
          f"{plural(run.scenario.streams.count, 'stream')} for "
          f"{run.scenario.load.total_s:.0f} s -> {run.results_dir}", flush=True)
    if run.scenario.metrics is not None:
        metrics = run.scenario.metrics
        print(f"metrics: http://{metrics.host}:{metrics.port}/metrics while the run lasts",
              flush=True)
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
    from records.documents import DocumentError, Status, dump, read_document
    from records.recorder import effective_status

    path = args.results_dir / "status.json"
    try:
        document = dump(read_document(path, Status))
    except DocumentError as exc:
        raise InputError(exc.problems,
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
    from harness.run.worker import worker_main

    return worker_main(args.master, args.index, args.metrics_port,
                       args.metrics_host or "127.0.0.1")
