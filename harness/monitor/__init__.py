"""Watching the target and the generator: processes and host, nginx /stat, PostgreSQL and
Redis pollers, PromQL, the API's own view of each stream, the generator's saturation."""
