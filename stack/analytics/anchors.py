"""Telling that the broker lost its log. The local broker keeps its log in memory: killed and
started again, it comes back empty and its offsets start over, so an offset alone no longer
names the same record. The loader keeps an anchor per partition — the offset and event id of the
last record it read — and reads that offset back before using a new batch: a different record
(or none) means the log was reset and must be read again from its start."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from stack.analytics.events import AnalyticsEvent


class LogReset(Exception):
    """The record an anchor names is gone: the broker's log started over."""


class AnchorProbe:
    """A group-less consumer that reads single records at given offsets."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="none", request_timeout_ms=5000)
        self._started = False

    async def _ready(self) -> AIOKafkaConsumer:
        if not self._started:
            await self._consumer.start()
            self._started = True
        return self._consumer

    async def holds(self, partition: int, offset: int, event_id: str) -> bool:
        """Whether the log's record at `offset` is the event `event_id`; KafkaError when the
        broker cannot say."""
        consumer = await self._ready()
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        try:
            found = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
        except OffsetOutOfRangeError:
            return False
        records = found.get(tp, [])
        if not records:
            raise KafkaError(f"partition {partition}: no answer for offset {offset}")
        try:
            seen = AnalyticsEvent.decode(records[0].value or b"").event_id
        except ValueError:
            seen = ""
        return records[0].offset == offset and seen == event_id

    async def check(self, anchors: dict[int, tuple[int, str]]) -> None:
        """Raise LogReset if any anchor's record is gone or another; KafkaError when the
        broker cannot say (then nothing is known, and nothing may be pruned)."""
        for partition, (offset, event_id) in anchors.items():
            if not await self.holds(partition, offset, event_id):
                raise LogReset(f"partition {partition}: offset {offset} no longer holds "
                               "the record seen there")

    async def close(self) -> None:
        if self._started:
            await asyncio.wait_for(self._consumer.stop(), 5)
            self._started = False
