"""Launcher pieces that need no server: nginx config rendering, option checks, CLI input."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.main import main
from stack.errors import StackStartError
from stack.local import _check_options
from stack.roles import StackOptions, render_nginx


def test_nginx_config_wires_webhooks_hls_and_upstreams(tmp_path: Path) -> None:
    (tmp_path / "nginx").mkdir()
    conf = render_nginx(tmp_path, http_port=8081, rtmp_port=1935, api_ports=[9001, 9002])
    text = conf.read_text()
    assert "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;" in text
    assert "listen 127.0.0.1:1935;" in text and "listen 127.0.0.1:8081" in text
    assert "on_publish http://127.0.0.1:8081/api/v1/streams/auth;" in text
    assert "on_publish_done http://127.0.0.1:8081/api/v1/streams/done;" in text
    assert "hls_fragment 2s;" in text and "hls_playlist_length 10s;" in text
    assert "hls_nested on;" in text and "hls_fragment_naming system;" in text
    assert "server 127.0.0.1:9001" in text and "server 127.0.0.1:9002" in text
    assert "worker_processes 1;" in text and "\nuser " not in text
    assert "$http_upgrade" in text and "$$" not in text


def test_option_problems_are_reported_together(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackStartError) as failure:
            _check_options(StackOptions(run_dir=tmp_path, instances=0, restart="sometimes",
                                        redis_port=port))
    message = str(failure.value)
    assert "--instances 0" in message and "--restart" in message
    assert f"redis: port {port}" in message


def test_bad_cli_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stack", "up", "--instances", "many"])
    assert exit_info.value.code == 2
    assert main(["stack", "up", "--service-env", "PORT=1", "--service-env", "x"]) == 2
    err = capsys.readouterr().err
    assert "'PORT=1'" in err and "'x'" in err and "hint:" in err


def test_token_without_a_stack_is_an_input_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "harness.cli", "token", "--run-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "stack up" in result.stderr
