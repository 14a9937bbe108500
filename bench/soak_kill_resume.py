"""Issue 7's crash-safety demonstration at full length: a soak (20 minutes by default) on the
local stack, SIGKILLed by PID half-way, judged by `analyze`, then continued with
`soak --resume` into the same folder; prints each step's verdict lines and the memory figures
of bench/soak_memory.py for the finished folder.

    .venv/bin/python bench/soak_kill_resume.py [--scenario scenarios/soak-4h.yaml]
        [--duration 20m] [--kill-at-s 600] [--results /tmp/soak-kill]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "harness.cli"]


def verdict_lines(output: str) -> str:
    keep = ("resuming", "run completed", "FAIL", "INCONCLUSIVE", "verdict:")
    return "\n".join(line for line in output.splitlines() if any(k in line for k in keep))


def elapsed_s(results: Path) -> float:
    found = list(results.glob("*/status.json"))
    if not found:
        return 0.0
    try:
        return float(json.loads(found[0].read_text()).get("elapsed_s") or 0.0)
    except ValueError:  # caught between writes
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="scenarios/soak-4h.yaml")
    parser.add_argument("--duration", default="20m")
    parser.add_argument("--kill-at-s", type=float, default=600.0)
    parser.add_argument("--results", type=Path, default=Path("/tmp/soak-kill"))
    args = parser.parse_args()
    soak = subprocess.Popen([*CLI, "soak", args.scenario, "--duration", args.duration,
                             "--results", str(args.results), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while elapsed_s(args.results) < args.kill_at_s:
        if soak.poll() is not None:
            sys.exit(f"the soak ended (exit {soak.returncode}) before {args.kill_at_s:.0f} s")
        time.sleep(2)
    os.kill(soak.pid, signal.SIGKILL)  # the harness this script started, by PID
    soak.wait()
    killed_at = time.time()
    folder = next(p for p in args.results.iterdir() if (p / "status.json").exists())
    print(f"killed {folder.name} at {elapsed_s(args.results):.0f} s")
    judged = subprocess.run([*CLI, "analyze", str(folder)], capture_output=True, text=True,
                            check=False)
    print(f"analyze (exit {judged.returncode}):\n{verdict_lines(judged.stdout)}")
    print(f"resuming {time.time() - killed_at:.0f} s after the kill")
    resumed = subprocess.run([*CLI, "soak", "--resume", str(folder), "--quiet"],
                             capture_output=True, text=True, check=False)
    print(f"soak --resume (exit {resumed.returncode}):\n{verdict_lines(resumed.stdout)}")
    subprocess.run([sys.executable, str(Path(__file__).with_name("soak_memory.py")),
                    str(folder)], check=False)


if __name__ == "__main__":
    main()
