"""ffmpeg publishers. A test clip is encoded once (cached by its parameters) and pushed with
`-re -stream_loop -1 -c copy`, which costs well under 1 % of a core per stream; live encoding
would cost a core per few streams."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.runtime.logfiles import rotated
from records.errors import HarnessError, InputError

CLIP_CACHE = Path(os.environ.get("NOVA_CLIP_CACHE", Path.home() / ".cache" / "nova-harness"))


@dataclass(frozen=True)
class ClipSpec:
    """What the pre-encoded clip looks like."""

    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate_kbps: int = 800
    seconds: int = 10

    def cache_name(self) -> str:
        digest = hashlib.sha256(repr(self).encode()).hexdigest()[:12]
        return f"clip-{self.width}x{self.height}-{self.fps}fps-{digest}.flv"


def ffmpeg_path() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise InputError(["ffmpeg is not installed"], hint="run `make setup`")
    return path


def ensure_clip(spec: ClipSpec = ClipSpec(), cache_dir: Path = CLIP_CACHE) -> Path:
    """The clip for `spec`, encoded on first use (a test pattern with a tone, 2 s GOP so HLS
    can cut 2 s fragments)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    clip = cache_dir / spec.cache_name()
    if clip.exists():
        return clip
    tmp = clip.with_suffix(".tmp.flv")
    command = [
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc=size={spec.width}x{spec.height}:rate={spec.fps}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(spec.seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-b:v", f"{spec.bitrate_kbps}k", "-g", str(spec.fps * 2), "-keyint_min", str(spec.fps * 2),
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(tmp),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HarnessError(f"encoding the test clip failed: {result.stderr.strip()[-300:]}")
    os.replace(tmp, clip)
    return clip


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the harness dies, even by SIGKILL — a
    looping publisher must never outlive the run that bounds it (Linux prctl)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Publisher:
    """One ffmpeg process pushing the clip to `{rtmp_url}/{key}` in real time, looping."""

    def __init__(self, rtmp_url: str, key: str, clip: Path, log_path: Path) -> None:
        self.target = f"{rtmp_url.rstrip('/')}/{key}"
        self.clip = clip
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at_s: float | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A publisher restarted all night appends to its log: rotate it at each (re)start.
        with open(rotated(self.log_path), "ab") as log:
            self.proc = subprocess.Popen(
                [ffmpeg_path(), "-hide_banner", "-loglevel", "warning", "-re",
                 "-stream_loop", "-1", "-i", str(self.clip), "-c", "copy", "-f", "flv",
                 self.target],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.started_at_s = time.time()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """Stop this publisher (TERM, then KILL); returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        return self.proc.returncode

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
