"""Checklist §6, the analytics path, in the verify suite: the Kafka broker answers an
ApiVersions request and has the events topic (what `kafka-broker-api-versions.sh` and
`kafka-topics.sh --list` show), and ClickHouse answers `SELECT 1` over its HTTP interface and
has the events table. Addresses from `--kafka-bootstrap` / `--clickhouse-url`, or the local
stack's analytics roles (`stack up --analytics`)."""

from __future__ import annotations

import asyncio
import time

from harness.errors import CheckSkipped, SourceError
from harness.monitor.analytics import ClickHouseReader, api_versions, kafka_facts
from harness.suites.base import Session, check, expect


def _bootstrap(s: Session) -> str:
    if not s.target.kafka_bootstrap:
        raise CheckSkipped("no Kafka given (--kafka-bootstrap, or `stack up --analytics` for "
                           "the local stack)")
    return s.target.kafka_bootstrap


def _clickhouse(s: Session) -> ClickHouseReader:
    if not s.target.clickhouse_url:
        raise CheckSkipped("no ClickHouse given (--clickhouse-url, or `stack up --analytics` "
                           "for the local stack)")
    return ClickHouseReader(s.target.clickhouse_url, s.target.profile.analytics,
                            password=s.target.clickhouse_password)


@check("verify", "kafka-broker", "§6 Kafka broker answers API versions; the events topic exists")
def kafka_broker(s: Session) -> str:
    bootstrap = _bootstrap(s)
    topic = s.target.profile.analytics.kafka.topic
    started = time.perf_counter()
    try:
        versions = api_versions(bootstrap)
    except (OSError, SourceError) as exc:
        s.note(f"ApiVersions {bootstrap}", None, str(exc), started)
        expect(False, f"the broker at {bootstrap} does not answer: {exc}")
    s.note(f"ApiVersions {bootstrap}", 0, f"{len(versions)} API keys", started)
    started = time.perf_counter()
    try:
        facts = asyncio.run(kafka_facts(bootstrap, topic, s.target.profile.analytics.kafka.group))
    except SourceError as exc:
        s.note(f"Metadata {bootstrap}", None, str(exc), started)
        expect(False, str(exc))
    s.note(f"Metadata {bootstrap}", 0, f"topics: {', '.join(facts.topics)}", started)
    expect(topic in facts.topics, f"topic {topic} does not exist (topics: "
                                  f"{', '.join(facts.topics) or 'none'})")
    return (f"{len(versions)} API keys answered; topic {topic} has "
            f"{len(facts.end_offsets)} partitions")


@check("verify", "clickhouse-select", "§6 ClickHouse answers SELECT 1; the events table exists")
def clickhouse_select(s: Session) -> str:
    reader = _clickhouse(s)
    table = reader.spec.table
    try:
        for statement, wanted in (("SELECT 1", "1"), (f"EXISTS TABLE {table}", "1")):
            started = time.perf_counter()
            try:
                answer = reader.query(statement).strip()
            except SourceError as exc:
                s.note(statement, None, str(exc), started)
                expect(False, f"{statement}: {exc}")
            s.note(statement, 200, answer, started)
            expect(answer == wanted, f"{statement} answered {answer!r}, not {wanted}")
    finally:
        reader.close()
    return f"SELECT 1 → 1; table {table} exists"
