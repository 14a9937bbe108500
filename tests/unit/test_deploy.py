"""The runner-VM files stay valid: systemd units pass `systemd-analyze verify` (paths pointed
at this checkout), timers name their units, CI examples are YAML that run `nova-harness soak`
and publish summary, JUnit and report."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"


def _units(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for unit in sorted(SYSTEMD.glob("*.service")) + sorted(SYSTEMD.glob("*.timer")):
        text = unit.read_text().replace("/opt/nova-harness", str(ROOT))
        (folder / unit.name).write_text(text.replace("User=nova", "User=root"))
        out.append(folder / unit.name)
    return out


def test_systemd_units_verify(tmp_path: Path) -> None:
    units = _units(tmp_path)
    assert {u.name for u in units} == {"nova-soak.service", "nova-soak.timer",
                                       "nova-soak-cleanup.service", "nova-soak-cleanup.timer"}
    for unit in units:
        parsed = configparser.ConfigParser(strict=False, interpolation=None)
        parsed.read_string(unit.read_text().replace("\\\n", " "))
        section = "Service" if unit.suffix == ".service" else "Timer"
        assert parsed.has_section(section), unit.name
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read_string((tmp_path / "nova-soak.service").read_text().replace("\\\n", " "))
    assert "nova-harness soak" in service["Service"]["ExecStart"]
    assert service["Service"]["KillSignal"] == "SIGINT"
    analyze = shutil.which("systemd-analyze")
    if analyze:  # present on a Debian machine with systemd; the parse above runs regardless
        result = subprocess.run([analyze, "verify", "--man=no", *map(str, units)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_ci_examples_run_the_soak_and_publish_its_files() -> None:
    for name in ("github-actions-soak.yml", "gitlab-ci-soak.yml"):
        text = (ROOT / "deploy" / "ci" / name).read_text()
        assert yaml.safe_load(text)
        assert "nova-harness soak scenarios/soak-4h.yaml" in text
        for published in ("summary.md", "junit.xml", "report.html"):
            assert published in text, (name, published)


def test_the_distributed_ci_example_uses_the_k8s_manifests() -> None:
    jobs = yaml.safe_load((ROOT / "deploy/ci/github-actions-soak.yml").read_text())["jobs"]
    steps = "\n".join(str(step.get("run", "")) for step in jobs["staging-distributed"]["steps"])
    assert "kubectl kustomize deploy/k8s" in steps
    assert "kubectl apply -f deploy/k8s/results-reader.yaml" in steps
    assert "job/nova-harness-master" in steps
    for name in ("deploy/k8s/results-reader.yaml", "deploy/k8s/kustomization.yaml"):
        assert (ROOT / name).exists()
