"""The argument parser of `nova-harness`: every command and option, with its help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.cli.commands import (
    cmd_analyze,
    cmd_check,
    cmd_compare,
    cmd_run,
    cmd_smoke,
    cmd_soak,
    cmd_stack_ctl,
    cmd_stack_down,
    cmd_stack_logs,
    cmd_stack_status,
    cmd_stack_up,
    cmd_status,
    cmd_token,
    cmd_validate,
    cmd_worker,
)
from stack import local


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
    _add_stack_commands(sub)
    _add_load_commands(sub)
    _add_analysis_commands(sub)
    return parser


def _add_stack_commands(sub: Any) -> None:
    """stack up|down|status|logs and the role controls."""
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
                       help=f"fixed {part} port (default: a free one)")
    p.add_argument("--service-env", action="append", default=[], metavar="NOVA_NAME=VALUE",
                   help="extra service setting, repeatable (docs/service.md)")
    p.add_argument("--latency-proxy", default="", metavar="ROLE[,ROLE]",
                   help="route the service's postgres and/or redis traffic through a "
                        "latency-injecting proxy (for network faults; docs/chaos.md)")
    p.add_argument("--prometheus", action="store_true",
                   help="also run a Prometheus scraping the service, with the checklist's "
                        "alert rules loaded (for `check --suite verify` §5/§8)")
    p.add_argument("--analytics", action="store_true",
                   help="also run the analytics path: a Kafka-protocol broker, ClickHouse and "
                        "the events loader (for §6/§14 checks; docs/service.md)")
    p.add_argument("--listen", default="127.0.0.1", metavar="ADDR",
                   help="the address every listener uses (default 127.0.0.1): an address of "
                        "this machine on a private network, e.g. a network namespace's; not "
                        "with --standby, --latency-proxy, --prometheus or --analytics")
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


def _add_load_commands(sub: Any) -> None:
    """token, validate, run and soak."""
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


def _add_metrics_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help=f"serve {what} for Prometheus on this port while running "
                        f"(docs/monitoring.md)")
    p.add_argument("--metrics-host", metavar="HOST",
                   help="address the metrics port listens on (default 127.0.0.1, or the "
                        "scenario's metrics.host; 0.0.0.0 for a Prometheus elsewhere)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    _add_overrides(p)
    _add_run_dir(p)
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder for results/<run-id>/ (default ./results)")
    p.add_argument("--workers", type=int, default=0,
                   help="local Locust worker processes (default 0: one process)")
    p.add_argument("--expect-workers", type=int, default=0, metavar="N",
                   help="wait for N workers started elsewhere (`nova-harness worker --master "
                        "HOST:PORT`) before the load starts; may be combined with --workers "
                        "(docs/distributed.md)")
    p.add_argument("--master-bind", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="address the master listens on for workers (default 127.0.0.1 and a "
                        "free port; an address of a private network for workers on other "
                        "hosts: the channel is plain ZeroMQ and carries tokens)")
    p.add_argument("--join-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="how long to wait for every worker to join (default 120)")
    p.add_argument("--web", type=int, metavar="PORT", help="serve Locust's web UI on this port")
    _add_metrics_options(p, "the run's nova_harness_* series (with --workers: the totals)")
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
    p.add_argument("--index", type=int, default=None,
                   help="worker number, for its name and where its viewers start among the "
                        "streams (default: the order the master saw workers join, from 1)")
    _add_metrics_options(p, "this worker's own nova_harness_* series (run_id worker-N)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("check", help="checklist suites: one PASS/FAIL/SKIPPED line per "
                                     "checklist line (docs/checks.md)")
    p.add_argument("--suite", action="append", required=True, metavar="NAME",
                   help="verify, api, e2e, access, security, contract, or all (repeat or "
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
    p.add_argument("--prometheus-url",
                   help="the target's Prometheus, for the §5/§8 verify checks (default: the "
                        "local stack's, with `stack up --prometheus`)")
    p.add_argument("--grafana-url", help="the target's Grafana, for the dashboard check")
    p.add_argument("--grafana-token-env", metavar="VAR",
                   help="variable holding a Grafana API token (with --grafana-url)")
    p.add_argument("--kafka-bootstrap", metavar="HOST:PORT",
                   help="the target's Kafka, for the §6 broker check (default: the local "
                        "stack's, with `stack up --analytics`)")
    p.add_argument("--clickhouse-url",
                   help="the target's ClickHouse HTTP interface, for the §6 check (default: "
                        "the local stack's, with `stack up --analytics`)")
    p.add_argument("--clickhouse-password-env", metavar="VAR",
                   help="variable holding the ClickHouse password (user `default`)")
    p.add_argument("--openapi", type=Path,
                   help="contract suite: the target's OpenAPI file (default: the profile's)")
    p.add_argument("--seed", type=int, default=0,
                   help="contract suite: seed of the generated requests (default 0; the same "
                        "seed sends the same requests)")
    p.add_argument("--examples", type=int, default=20,
                   help="contract suite: generated requests per operation and kind (valid, "
                        "valid on a real stream, invalid), 1..500 (default 20)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder for the results (default: results/)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("smoke", help="broadcast + viewer smoke against the running local stack")
    _add_run_dir(p)
    p.add_argument("--viewers", type=int, default=3, help="WebSocket viewers (default 3)")
    p.add_argument("--seconds", type=float, default=6.0, help="how long to publish")
    p.set_defaults(func=cmd_smoke)
