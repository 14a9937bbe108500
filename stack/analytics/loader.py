"""The events loader: reads the analytics topic and inserts into ClickHouse in batches, at
least once. After each insert it publishes the stored event ids to the acknowledgement topic
(the service keeps every event until it is named there) and commits the batch's offsets to its
consumer group, so a loader killed mid-batch starts again from the last commit; ClickHouse down
holds the batch until it answers again. The store drops copies by event id.

Partitions are assigned by the loader itself (one loader per stack) and offsets kept in the
group: a restarted loader resumes at once instead of waiting out a group rebalance. A broker
that lost its log (stack.analytics.anchors) is read again from its start by a new consumer, and
a consumer that stops making progress is replaced.

`python -m stack.analytics.loader`, configured by NOVA_* variables (docs/service.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from stack.analytics import clickhouse
from stack.analytics.anchors import AnchorProbe, LogReset
from stack.analytics.events import ACK_TOPIC, LOADER_GROUP, PARTITIONS, TOPIC, AnalyticsEvent

log = logging.getLogger("nova.loader")
BATCH = 2000
RETRY_S = 0.5
CALL_TIMEOUT_S = 10.0
IDLE_REPORT_S = 60.0
PARTITIONS_CHECK_S = 5.0
# Longer than any one step may take: a ClickHouse outage holds the loop in _insert, which
# marks progress on every retry.
STUCK_S = 30.0
Batch = dict[TopicPartition, list[Any]]


class ConsumerStale(Exception):
    """The consumer must be made anew: the broker lost its log, or stopped taking its
    commits (after a broker restart an existing client's commits can hang; a new one's work)."""


@dataclass(frozen=True)
class LoaderSettings:
    bootstrap: str
    clickhouse_url: str
    port: int
    topic: str = TOPIC
    group: str = LOADER_GROUP
    # Test-only: drop every Nth event instead of storing it, yet acknowledge and commit it as
    # stored (0: never) — a loader that loses events silently, so a test can show the
    # consistency threshold failing (one that only failed to store would get them re-sent).
    drop_every: int = 0

    @classmethod
    def from_env(cls) -> LoaderSettings:
        env = os.environ
        return cls(bootstrap=env["NOVA_KAFKA_BOOTSTRAP"],
                   clickhouse_url=env["NOVA_CLICKHOUSE_URL"].rstrip("/"),
                   port=int(env["NOVA_LOADER_PORT"]),
                   topic=env.get("NOVA_KAFKA_TOPIC", TOPIC),
                   drop_every=int(env.get("NOVA_LOADER_DROP_EVERY", "0") or 0))


async def finishes(call: Coroutine[Any, Any, Any], timeout_s: float) -> bool:
    """Whether `call` finished within the time. Unlike wait_for, a call that ignores its
    cancellation (a client's commit to a broker that restarted) is left behind, not awaited."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        return False
    error = task.exception()
    if error is not None:
        raise error
    return True


class Loader:
    def __init__(self, settings: LoaderSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.events = Counter("nova_loader_events_total", "Events by outcome: consumed, "
                              "inserted, undecodable, dropped_for_test", ["outcome"],
                              registry=self.registry)
        self.insert_failures = Counter("nova_loader_insert_failures_total",
                                       "ClickHouse inserts that failed and were retried",
                                       registry=self.registry)
        self.restarts = Counter("nova_loader_consumer_restarts_total",
                                "Consumers replaced (the broker lost its log, a commit hung, "
                                "no progress)", registry=self.registry)
        self.consuming = False
        Gauge("nova_loader_ready", "1 while consuming", registry=self.registry).set_function(
            lambda: float(self.consuming))
        self.anchors: dict[int, tuple[int, str]] = {}
        self.beat = time.monotonic()  # the consuming loop's last sign of progress
        self._seen = 0
        self._acks: AIOKafkaProducer | None = None

    # -- the consumer's life ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Load until stopped; a broker that does not answer is waited for, and a consumer
        that stops making progress is replaced."""
        while not stop.is_set():
            attempt = asyncio.ensure_future(self._run_once(stop))
            stuck = await self._watch(attempt)
            try:
                await attempt
            except (KafkaError, ConsumerStale) as exc:
                log.warning("%s; starting the consumer again", exc)
            except asyncio.CancelledError:
                if not stuck:
                    raise
            self.consuming = False
            self.restarts.inc()
            await self._drop_acks()
            await asyncio.sleep(RETRY_S)
        await self._drop_acks()

    async def _watch(self, attempt: asyncio.Future[None]) -> bool:
        """Wait for `attempt`; cancel it (True) when its loop made no progress for STUCK_S."""
        self.beat = time.monotonic()
        while not attempt.done():
            await asyncio.wait({attempt}, timeout=1.0)
            if not attempt.done() and time.monotonic() - self.beat > STUCK_S:
                log.warning("no progress for %.0fs; starting the consumer again", STUCK_S)
                attempt.cancel()
                return True
        return False

    async def _run_once(self, stop: asyncio.Event) -> None:
        s = self.settings
        await asyncio.to_thread(clickhouse.ensure_schema, s.clickhouse_url)
        await self._ensure_topic()
        # Metadata refreshed every few seconds (default 5 min): a topic made again after a
        # broker restart may have more partitions, and _check_partitions must see them.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=s.group, enable_auto_commit=False,
            auto_offset_reset="earliest", request_timeout_ms=5000,
            metadata_max_age_ms=int(PARTITIONS_CHECK_S * 1000))
        await consumer.start()
        probe = AnchorProbe(s.bootstrap, s.topic)
        try:
            await self._assign(consumer)
            self.consuming = True
            log.info("loading %s into %s", s.topic, clickhouse.TABLE)
            await self._consume(consumer, probe, stop)
        finally:
            await finishes(probe.close(), CALL_TIMEOUT_S)
            await finishes(consumer.stop(), CALL_TIMEOUT_S)

    async def _consume(self, consumer: AIOKafkaConsumer, probe: AnchorProbe,
                       stop: asyncio.Event) -> None:
        idle_since = checked = time.monotonic()
        while not stop.is_set():
            self.beat = time.monotonic()
            if self.beat - checked >= PARTITIONS_CHECK_S:
                checked = self.beat
                self._check_partitions(consumer)
            batch = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            if batch and await self._same_log(consumer, probe, batch):
                await self._load(consumer, batch, stop)
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= IDLE_REPORT_S:
                idle_since = time.monotonic()
                positions = {tp.partition: await consumer.position(tp)
                             for tp in consumer.assignment()}
                log.info("no records for %.0fs; positions %s", IDLE_REPORT_S, positions)

    def _check_partitions(self, consumer: AIOKafkaConsumer) -> None:
        """A topic made again after a broker restart can have more partitions than the loader
        was assigned (whichever client made it chose the count): read them all."""
        found = consumer.partitions_for_topic(self.settings.topic) or set()
        assigned = {tp.partition for tp in consumer.assignment()}
        if found - assigned:
            raise ConsumerStale(f"the topic has partitions {sorted(found - assigned)} the "
                                "consumer does not read")

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.settings.topic, PARTITIONS, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        """Every partition, each from the group's commit (else from offset 0: not
        seek_to_beginning, whose offset lookups the local broker can answer from before its
        restart; past a real Kafka's log start, auto_offset_reset applies)."""
        partitions = consumer.partitions_for_topic(self.settings.topic)
        while not partitions:
            await consumer._client.force_metadata_update()  # no public call for this
            partitions = consumer.partitions_for_topic(self.settings.topic)
            await asyncio.sleep(0.2)
        parts = [TopicPartition(self.settings.topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        for tp in parts:
            committed = await consumer.committed(tp)
            consumer.seek(tp, committed if committed is not None and committed >= 0 else 0)

    async def _same_log(self, consumer: AIOKafkaConsumer, probe: AnchorProbe,
                        batch: Batch) -> bool:
        """Whether `batch` continues the log this loader read so far, checked before any of
        it is used. A reset log is read again by a new consumer; when the broker cannot say,
        the batch is fetched again later."""
        try:
            await probe.check(dict(self.anchors))
            return True
        except LogReset as exc:
            self.anchors.clear()
            raise ConsumerStale(f"the broker lost its log ({exc})") from None
        except KafkaError as exc:
            log.info("log check inconclusive (%s); fetching again", exc)
            for tp, records in batch.items():
                consumer.seek(tp, records[0].offset)
            await asyncio.sleep(RETRY_S)
        return False

    # -- one batch ------------------------------------------------------------------------

    async def _load(self, consumer: AIOKafkaConsumer, batch: Batch,
                    stop: asyncio.Event) -> None:
        rows, decoded, marks = [], [], {}
        for tp, records in batch.items():
            for record in records:
                self.events.labels("consumed").inc()
                try:
                    event = AnalyticsEvent.decode(record.value or b"")
                except ValueError:
                    self.events.labels("undecodable").inc()
                    continue
                self.anchors[tp.partition] = (record.offset, event.event_id)
                decoded.append(event)
                if not self._dropped_for_test():
                    rows.append(event)
            marks[tp] = records[-1].offset + 1
        await self._insert(rows, stop)
        await self._acknowledge(decoded)
        if not await finishes(consumer.commit(marks), CALL_TIMEOUT_S):
            # Stored but not committed: read again by the next consumer, dropped by the store.
            raise ConsumerStale(f"commit not taken in {CALL_TIMEOUT_S:g}s")

    def _dropped_for_test(self) -> bool:
        self._seen += 1
        every = self.settings.drop_every
        if every and self._seen % every == 0:
            self.events.labels("dropped_for_test").inc()
            return True
        return False

    async def _insert(self, events: list[AnalyticsEvent], stop: asyncio.Event) -> None:
        """Until ClickHouse takes the batch (a stop request gives up: nothing is committed)."""
        if not events:
            return
        statement = f"INSERT INTO {clickhouse.TABLE} FORMAT JSONEachRow"
        while True:
            loaded_ts = time.time()
            body = "\n".join(json.dumps({**asdict(e), "loaded_ts": loaded_ts})
                             for e in events).encode()
            try:
                await asyncio.to_thread(clickhouse.query, self.settings.clickhouse_url,
                                        statement, body)
                self.events.labels("inserted").inc(len(events))
                return
            except clickhouse.ClickHouseError as exc:
                self.insert_failures.inc()
                log.warning("insert of %d events failed (%s); retrying", len(events), exc)
                if stop.is_set():
                    raise
                self.beat = time.monotonic()
                await asyncio.sleep(RETRY_S)
                # A ClickHouse started afresh has no table; the schema is idempotent.
                with contextlib.suppress(clickhouse.ClickHouseError):
                    await asyncio.to_thread(clickhouse.ensure_schema,
                                            self.settings.clickhouse_url)

    async def _acknowledge(self, events: list[AnalyticsEvent]) -> None:
        """Name the stored ids to the service. A lost acknowledgement only makes the service
        send those events again (stored twice, read once)."""
        if not events:
            return
        try:
            if self._acks is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap,
                                            acks="all", request_timeout_ms=5000)
                await producer.start()
                self._acks = producer
            body = json.dumps({"ids": [e.event_id for e in events]}).encode()
            if not await finishes(self._acks.send_and_wait(ACK_TOPIC, body), CALL_TIMEOUT_S):
                raise KafkaError("acknowledgement not taken in time")
        except KafkaError as exc:
            log.warning("acknowledgement of %d stored events failed (%s)", len(events), exc)
            await self._drop_acks()

    async def _drop_acks(self) -> None:
        producer, self._acks = self._acks, None
        if producer is not None:
            await finishes(producer.stop(), CALL_TIMEOUT_S)

    # -- HTTP -----------------------------------------------------------------------------

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            content_type="text/plain", charset="utf-8")

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.consuming else 503)


async def _main(settings: LoaderSettings) -> None:
    loader = Loader(settings)
    app = web.Application()
    app.router.add_get("/health", loader.health)
    app.router.add_get("/metrics", loader.metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await loader.run(stop)
    finally:
        await runner.cleanup()


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s loader %(levelname)s %(message)s")
    # aiokafka logs every failed reconnect at ERROR; an outage is reported once, by the loader.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = LoaderSettings.from_env()
    except (KeyError, ValueError) as exc:
        print(f"events loader: bad or missing setting {exc}", file=sys.stderr)
        return 2
    asyncio.run(_main(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
