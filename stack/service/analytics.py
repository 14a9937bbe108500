"""Publishing lifecycle events to the analytics topic without ever holding up a request.

`emit` only appends to a queue. A sender task produces queued events; each one the broker
acknowledged is held until the events loader says it is stored: after each ClickHouse insert the
loader publishes the stored event ids to an acknowledgement topic, which every instance reads.
An event not acknowledged within `analytics_ack_timeout_s` is sent again (the store drops the
copy by event id). So nothing the service emitted is lost to a broker that loses its log (the
local broker keeps it in memory), a loader that dies mid-batch or a ClickHouse outage; what the
service holds is bounded by `analytics_max_pending` (beyond it the oldest are dropped, counted)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from stack.analytics.events import ACK_TOPIC, AnalyticsEvent
from stack.service.config import Settings
from stack.service.metrics import ServiceMetrics
from stack.service.tasks import cancel_all

log = logging.getLogger("nova.analytics")
BATCH = 500
RETRY_S = 1.0


class EventPublisher:
    """The outbox of one service instance."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.enabled = bool(settings.kafka_bootstrap)
        self._queue: deque[AnalyticsEvent] = deque()
        # Sent and acknowledged by the broker, not yet known to be stored: id → (sent, event).
        self._held: OrderedDict[str, tuple[float, AnalyticsEvent]] = OrderedDict()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._acks: AIOKafkaConsumer | None = None
        self._last_ack = time.monotonic()

    @property
    def held(self) -> int:
        """Events not yet known to be stored."""
        return len(self._queue) + len(self._held)

    def emit(self, event_type: str, stream_id: str, viewer_id: str = "",
             session_id: str = "") -> None:
        """Queue one event; never blocks, never raises."""
        if not self.enabled:
            return
        if self.held >= self.settings.analytics_max_pending:
            if self._held:
                self._held.popitem(last=False)
            else:
                self._queue.popleft()
            self.metrics.analytics_events.labels("dropped").inc()
        self._queue.append(AnalyticsEvent(event_type, stream_id, viewer_id, session_id,
                                          self.settings.instance_id))
        self.metrics.analytics_events.labels("emitted").inc()
        self._wake.set()

    def start(self) -> None:
        if self.enabled:
            self.metrics.analytics_held.set_function(lambda: self.held)
            self._tasks = [asyncio.create_task(self._send_forever()),
                           asyncio.create_task(self._read_acks_forever()),
                           asyncio.create_task(self._resend_forever())]

    async def close(self) -> None:
        await cancel_all(self._tasks)
        await self._drop_ack_reader()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 5)

    # -- sending ------------------------------------------------------------------------

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap,
                                        acks="all", request_timeout_ms=5000, linger_ms=5)
            try:
                await producer.start()
            except KafkaError:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _send_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                try:
                    await self._send_batch(await self._producer_ready())
                except KafkaError as exc:
                    self.metrics.analytics_events.labels("send_failed").inc()
                    log.warning("analytics: publish failed (%s); retrying in %.0fs", exc,
                                RETRY_S)
                    await asyncio.sleep(RETRY_S)

    async def _send_batch(self, producer: AIOKafkaProducer) -> None:
        batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        futures = []
        try:
            for event in batch:
                futures.append(await producer.send(self.settings.kafka_topic, event.encode(),
                                                   key=event.stream_id.encode()))
            results = await asyncio.gather(*futures, return_exceptions=True)
        except BaseException:
            self._queue.extendleft(reversed(batch))
            raise
        failed = []
        now = time.monotonic()
        for event, result in zip(batch, results, strict=False):
            if isinstance(result, BaseException):
                failed.append(event)
            else:
                self._held[event.event_id] = (now, event)
                self.metrics.analytics_events.labels("acknowledged").inc()
        failed += batch[len(results):]
        if failed:
            self._queue.extendleft(reversed(failed))
            raise KafkaError(f"{len(failed)} of {len(batch)} events not acknowledged")

    # -- acknowledgements from the loader -------------------------------------------------

    async def _read_acks_forever(self) -> None:
        while True:
            try:
                reader = await self._ack_reader()
                found = await reader.getmany(timeout_ms=1000)
            except KafkaError as exc:
                log.info("analytics: reading acknowledgements failed (%s)", exc)
                await self._drop_ack_reader()
                await asyncio.sleep(RETRY_S)
                continue
            for records in found.values():
                for record in records:
                    self._stored(record.value or b"")

    def _stored(self, raw: bytes) -> None:
        try:
            ids = json.loads(raw)["ids"]
        except (ValueError, KeyError, TypeError):
            return
        self._last_ack = time.monotonic()
        for event_id in ids:
            if self._held.pop(str(event_id), None) is not None:
                self.metrics.analytics_events.labels("stored").inc()

    async def _ack_reader(self) -> AIOKafkaConsumer:
        """A group-less reader of every partition of the acknowledgement topic, from the
        start (an instance's own ids are among any loader's acknowledgements)."""
        if self._acks is None:
            reader = AIOKafkaConsumer(ACK_TOPIC, bootstrap_servers=self.settings.kafka_bootstrap,
                                      group_id=None, enable_auto_commit=False,
                                      auto_offset_reset="earliest", request_timeout_ms=5000,
                                      metadata_max_age_ms=5000)
            await reader.start()
            self._acks = reader
        return self._acks

    async def _drop_ack_reader(self) -> None:
        reader, self._acks = self._acks, None
        if reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), 5)

    # -- sending again what was not stored -------------------------------------------------

    async def _resend_forever(self) -> None:
        timeout_s = self.settings.analytics_ack_timeout_s
        while True:
            await asyncio.sleep(min(1.0, timeout_s / 2))
            due = time.monotonic() - timeout_s
            again = []
            while self._held:
                sent, event = next(iter(self._held.values()))
                if sent > due:
                    break
                self._held.popitem(last=False)
                again.append(event)
            if again:
                self._queue.extendleft(reversed(again))
                self.metrics.analytics_events.labels("resent").inc(len(again))
                log.warning("analytics: %d events not stored after %.0fs; sending them again",
                            len(again), timeout_s)
                self._wake.set()
                if time.monotonic() - self._last_ack > 3 * timeout_s:
                    await self._drop_ack_reader()  # made anew: old clients can hang after a
                    # broker restart
