"""The analytics path as monitoring sources (docs/monitoring.md, "Analytics"): ClickHouse over
its HTTP interface (every ClickHouse version and ClickHouse Cloud serve it) and Kafka through
aiokafka's admin client. Polled during a run into `metrics`; after the load, the run's events
as ClickHouse holds them are read once into `events` (`clickhouse_event` rows, one per event
id, and one `analytics_snapshot` row saying when and how)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from harness.config.analytics import AnalyticsProfile
from harness.config.monitors import AnalyticsSources
from harness.errors import SourceError
from harness.monitor.processes import PolledSource
from records.schema import EventRow, RowSink

SNAPSHOT_LIMIT = 2_000_000
# One Kafka poll at most this long: a poll that hangs must not hold up the run's shutdown.
POLL_TIMEOUT_S = 15.0


def sql_string(value: str) -> str:
    """A ClickHouse string literal (18.x has no query parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    event_type: str
    stream: str
    viewer: str
    event_ts: float
    ingested_ts: float | None
    rows: int  # rows holding this id as read (more than 1: a duplicate the table kept)


class ClickHouseReader:
    """SQL over the HTTP interface; table and field expressions from the target profile."""

    def __init__(self, url: str, profile: AnalyticsProfile, user: str = "default",
                 password: str | None = None, timeout_s: float = 10.0) -> None:
        headers = {"X-ClickHouse-User": user}
        if password:
            headers["X-ClickHouse-Key"] = password
        self.url, self.spec = url.rstrip("/"), profile.clickhouse
        self.client = httpx.Client(timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self.client.close()

    def query(self, statement: str) -> str:
        try:
            answer = self.client.post(self.url + "/", content=statement.encode())
        except httpx.HTTPError as exc:
            raise SourceError(f"ClickHouse {self.url}: {type(exc).__name__}: {exc}") from None
        if answer.status_code != 200:
            raise SourceError(f"ClickHouse answered HTTP {answer.status_code}: "
                              f"{answer.text.strip()[:200]}")
        return answer.text

    def _where(self, streams: Iterable[str]) -> str:
        wanted = ", ".join(sql_string(s) for s in sorted(set(streams))) or "''"
        return f"{self.spec.columns.stream} IN ({wanted})"

    def counts(self, streams: Iterable[str]) -> dict[str, int]:
        """Event type → stored events of these streams (duplicates dropped as configured)."""
        c = self.spec.columns
        final = " FINAL" if self.spec.final else ""
        text = self.query(f"SELECT {c.event_type}, count() FROM {self.spec.table}{final} "
                          f"WHERE {self._where(streams)} GROUP BY {c.event_type} "
                          "FORMAT TabSeparated")
        return _counted(text)

    def events(self, streams: Iterable[str]) -> list[StoredEvent]:
        """Every stored event of these streams, one per id: when it was first stored (a copy
        stored later, e.g. re-sent after a broker restart, does not make it late) and how many
        rows a reader of the table gets for it (with FINAL when the profile says so)."""
        c, where = self.spec.columns, self._where(streams)
        ingested = f"min({c.ingested_ts})" if c.ingested_ts else "-1"
        text = self.query(
            f"SELECT {c.event_id} AS id, any({c.event_type}) AS type, any({c.stream}) AS stream, "
            f"any({c.viewer}) AS viewer, min({c.event_ts}) AS ts, {ingested} AS ingested, "
            f"count() AS n FROM {self.spec.table} WHERE {where} "
            f"GROUP BY id LIMIT {SNAPSHOT_LIMIT} FORMAT JSONEachRow")
        read = self._rows_as_read(where) if self.spec.final else {}
        found = []
        for line in text.splitlines():
            if not line:
                continue
            row = json.loads(line)
            ingested_ts = float(row["ingested"])  # 64-bit integers come quoted
            found.append(StoredEvent(str(row["id"]), str(row["type"]), str(row["stream"]),
                                     str(row["viewer"]), float(row["ts"]),
                                     ingested_ts if ingested_ts >= 0 else None,
                                     read.get(str(row["id"]), int(row["n"]))))
        return found

    def _rows_as_read(self, where: str) -> dict[str, int]:
        c = self.spec.columns
        text = self.query(f"SELECT {c.event_id} AS id, count() AS n FROM {self.spec.table} "
                          f"FINAL WHERE {where} GROUP BY id LIMIT {SNAPSHOT_LIMIT} "
                          "FORMAT TabSeparated")
        return _counted(text)


def _counted(tab_separated: str) -> dict[str, int]:
    """`key<TAB>count` lines (a GROUP BY's answer) as a dict."""
    pairs = (line.split("\t") for line in tab_separated.splitlines() if line)
    return {key: int(count) for key, count in pairs}


class ClickHouseSource(PolledSource):
    """`clickhouse_up` and, per event type, `clickhouse_events` of the run's streams."""

    name = "clickhouse"

    def __init__(self, sink: RowSink, reader: ClickHouseReader,
                 streams: Callable[[], Iterable[str]], interval_s: float) -> None:
        super().__init__(sink, interval_s)
        self.reader, self.streams = reader, streams

    def poll(self) -> list[tuple[str, str, float]]:
        rows = [("clickhouse_up", "", float(self.reader.query("SELECT 1").strip() == "1"))]
        streams = list(self.streams())
        if streams:
            rows += [("clickhouse_events", f"type={kind}", float(n))
                     for kind, n in sorted(self.reader.counts(streams).items())]
        return rows

    def stop(self) -> None:
        super().stop()
        self.reader.close()


def record_snapshot(sink: RowSink, reader: ClickHouseReader, streams: list[str],
                    settle_s: float, last_event_ts: float) -> int:
    """Read the run's events from ClickHouse into `events`; returns how many ids were read.
    The `analytics_snapshot` row's value is how long after the last event the read began."""
    started = time.time()
    stored = reader.events(streams)
    for event in stored:
        lag_s = None if event.ingested_ts is None else event.ingested_ts - event.event_ts
        sink.add(EventRow(event.event_ts, "clickhouse_event", event.stream, event.viewer or None,
                          lag_s, json.dumps({"id": event.event_id, "type": event.event_type,
                                             "rows": event.rows})))
    sink.add(EventRow(started, "analytics_snapshot", None, None, started - last_event_ts,
                      json.dumps({"table": reader.spec.table, "streams": len(streams),
                                  "events": len(stored), "settle_s": settle_s,
                                  "types": reader.spec.types})))
    return len(stored)


class KafkaSource(PolledSource):
    """Broker reachable, the topic's partitions, end offsets and the loader group's lag
    (`kafka_consumer_lag` per partition and in total): a series, polled."""

    name = "kafka"

    def __init__(self, sink: RowSink, bootstrap: str, profile: AnalyticsProfile,
                 interval_s: float) -> None:
        super().__init__(sink, interval_s)
        self.bootstrap, self.spec = bootstrap, profile.kafka

    def poll(self) -> list[tuple[str, str, float]]:
        facts = asyncio.run(asyncio.wait_for(
            kafka_facts(self.bootstrap, self.spec.topic, self.spec.group), POLL_TIMEOUT_S))
        rows = [("kafka_broker_up", "", 1.0),
                ("kafka_topic_partitions", f"topic={self.spec.topic}",
                 float(len(facts.end_offsets)))]
        for partition, lag in sorted(facts.lag.items()):
            rows.append(("kafka_consumer_lag", f"group={self.spec.group},partition={partition}",
                         float(lag)))
        rows.append(("kafka_consumer_lag_total", f"group={self.spec.group}",
                     float(sum(facts.lag.values()))))
        return rows

    def failure(self, exc: Exception) -> tuple[str, str]:
        return "kafka_broker_up", f"error={type(exc).__name__}"


def api_versions(bootstrap: str, timeout_s: float = 5.0) -> dict[int, tuple[int, int]]:
    """The broker's ApiVersions answer (what `kafka-broker-api-versions.sh` prints): API key →
    (min, max) version. Kafka's wire format, version 0 of the request, sent directly."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    client_id = b"nova-harness"
    # api_key 18 (ApiVersions), version 0, correlation id 1, client id.
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read_exactly(sock, 4))[0]
        answer = _read_exactly(sock, size)
    _correlation, error, count = struct.unpack(">ihi", answer[:10])
    if error:
        raise SourceError(f"Kafka {bootstrap}: ApiVersions answered error code {error}")
    return {key: (low, high) for key, low, high in
            (struct.unpack(">hhh", answer[10 + 6 * i:16 + 6 * i]) for i in range(count))}


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise SourceError("the broker closed the connection mid-answer")
        data += chunk
    return data


@dataclass(frozen=True)
class KafkaFacts:
    api_versions: int              # API keys the broker answered with
    topics: tuple[str, ...]
    end_offsets: dict[int, int]    # partition → next offset
    lag: dict[int, int]            # partition → records not yet committed by the group


async def kafka_facts(bootstrap: str, topic: str, group: str,
                      timeout_ms: int = 5000) -> KafkaFacts:
    """What the admin client and a group-less consumer can tell about the topic and group."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        versions = len(await asyncio.to_thread(api_versions, bootstrap))
        topics = tuple(sorted(await admin.list_topics()))
        if topic not in topics:
            return KafkaFacts(versions, topics, {}, {})
        await consumer.start()
        parts = [TopicPartition(topic, p)
                 for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = {tp.partition: int(o) for tp, o in (await consumer.end_offsets(parts)).items()}
        committed = await admin.list_consumer_group_offsets(group, partitions=parts)
        lag = {}
        for tp in parts:
            mark = committed.get(tp)
            done = mark.offset if mark is not None and mark.offset >= 0 else 0
            lag[tp.partition] = max(0, ends.get(tp.partition, 0) - done)
        return KafkaFacts(versions, topics, ends, lag)
    except KafkaError as exc:
        raise SourceError(f"Kafka {bootstrap}: {type(exc).__name__}: {exc}") from None
    finally:
        await consumer.stop()
        await admin.close()


def analytics_addresses(spec: AnalyticsSources,
                        endpoints: dict[str, str]) -> tuple[str | None, str | None]:
    """(ClickHouse URL, Kafka bootstrap): the scenario's, else the local stack's."""
    return (spec.clickhouse_url or endpoints.get("clickhouse_url"),
            spec.kafka_bootstrap or endpoints.get("kafka_bootstrap"))


