"""The reference stack's analytics path (docs/service.md, "Analytics path"): the service
publishes lifecycle events to a Kafka-protocol topic, the events loader copies them into
ClickHouse. Everything specific to the local broker binary and the ClickHouse server lives here."""
