"""A run's parts stop in reverse start order, each stop guarded (harness/run/services.py)."""

from __future__ import annotations

import pytest

from harness.run.services import Services


class Part:
    def __init__(self, name: str, log: list[str], fail_start: bool = False,
                 fail_stop: bool = False) -> None:
        self.name, self.log = name, log
        self.fail_start, self.fail_stop = fail_start, fail_stop

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail_start:
            raise RuntimeError(f"{self.name} would not start")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise OSError(f"{self.name} would not stop")


def test_parts_stop_in_reverse_order_and_one_failing_stop_leaks_none() -> None:
    log: list[str] = []
    services = Services()
    services.start("a", Part("a", log))
    services.adopt("b", lambda: log.append("stop b"))
    services.start("c", Part("c", log, fail_stop=True))
    services.start("d", Part("d", log))
    services.stop_all()
    assert log == ["start a", "start c", "start d", "stop d", "stop c", "stop b", "stop a"]
    assert services.stop_errors == ["stopping c: OSError: c would not stop"]
    services.stop_all()  # a second call stops nothing twice
    assert log.count("stop a") == 1


def test_a_part_whose_start_failed_is_still_stopped() -> None:
    log: list[str] = []
    services = Services()
    services.start("a", Part("a", log))
    with pytest.raises(RuntimeError):
        services.start("workers", Part("workers", log, fail_start=True))
    services.stop_all()
    assert log[-2:] == ["stop workers", "stop a"]
