"""deploy/k8s cannot run here (no cluster): its manifests are schema-checked against the
Kubernetes API (kubernetes-validate, strict), rendered by kustomize when kubectl is present,
and held consistent with each other and with the harness's own CLI and scenario format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from harness.cli.parser import build_parser
from harness.config.scenario import load_scenario
from tests.unit.test_compose import installed_packages

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31.0"


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource the kustomization lists, by (kind, name)."""
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    found = {}
    for name in listed:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_every_manifest_passes_the_api_schema_strictly() -> None:
    found = resources()
    assert {kind for kind, _ in found} == {"Namespace", "Secret", "ConfigMap",
                                           "PersistentVolumeClaim", "Service", "Job"}
    for (kind, name), document in found.items():
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert kind == "Namespace" or document["metadata"]["namespace"] == "nova-harness", name


def test_the_schema_check_would_catch_a_mistake() -> None:
    job = resources()[("Job", "nova-harness-workers")]
    job["spec"]["template"]["spec"]["containers"][0]["argz"] = ["worker"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_the_same_resources() -> None:
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True,
                              text=True, timeout=60, check=True).stdout
    names = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered)}
    assert names == set(resources())


def test_workers_join_the_masters_service_and_the_counts_agree() -> None:
    found = resources()
    master_job, workers = found[("Job", "nova-harness-master")], \
        found[("Job", "nova-harness-workers")]
    service = found[("Service", "nova-harness-master")]
    master, worker = container(master_job), container(workers)
    pod_labels = master_job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    bind_port = int(option(master["args"], "--master-bind").rsplit(":", 1)[1])
    assert port["targetPort"] == bind_port == port["port"]
    assert {"containerPort": bind_port, "name": "workers"} in master["ports"]
    assert option(worker["args"], "--master") == f"{service['metadata']['name']}:{bind_port}"
    expected = int(option(master["args"], "--expect-workers"))
    assert workers["spec"]["parallelism"] == workers["spec"]["completions"] == expected
    for job in (master_job, workers):  # bounded, as every load must be
        assert job["spec"]["activeDeadlineSeconds"] <= 7200
        assert job["spec"]["backoffLimit"] == 0
    assert "env" not in worker and "volumeMounts" not in worker  # no secret, no scenario


def test_the_container_arguments_are_the_harness_cli() -> None:
    found = resources()
    parser = build_parser()
    for job in ("nova-harness-master", "nova-harness-workers"):
        args = parser.parse_args(container(found[("Job", job)])["args"])
        assert args.func is not None


def test_the_scenario_validates_and_its_secret_comes_from_the_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = resources()
    text = found[("ConfigMap", "nova-harness-scenario")]["data"]["scenario.yaml"]
    document = yaml.safe_load(text)
    assert document["thresholds"].startswith("/app/scenarios/")  # where the image has them
    assert (ROOT / document["thresholds"].removeprefix("/app/")).exists()
    path = tmp_path / "scenario.yaml"
    path.write_text(text.replace("/app/scenarios/", f"{ROOT}/scenarios/"))  # the image's
    monkeypatch.setenv(document["auth"]["secret_env"], "x" * 32)  # what the Secret gives
    scenario, _ = load_scenario(path)
    master = container(found[("Job", "nova-harness-master")])
    (env,) = master["env"]
    assert env["name"] == scenario.auth.secret_env
    secret = env["valueFrom"]["secretKeyRef"]
    assert secret["key"] in found[("Secret", secret["name"])]["stringData"]
    mounts = {m["name"]: m["mountPath"] for m in master["volumeMounts"]}
    assert master["args"][:2] == ["run", f"{mounts['scenario']}/scenario.yaml"]
    assert option(master["args"], "--results") == mounts["results"]
    volumes = {v["name"]: v for v in found[("Job", "nova-harness-master")]["spec"]["template"]
               ["spec"]["volumes"]}
    assert ("PersistentVolumeClaim", volumes["results"]["persistentVolumeClaim"]["claimName"]) \
        in found


def test_the_image_has_ffmpeg_every_package_and_the_scenarios() -> None:
    lines = [line.strip() for line in (K8S / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0].startswith("FROM python:3.11")
    assert any("apt-get install" in line and "ffmpeg" in line for line in lines)
    copied = {line.split()[1] for line in lines if line.startswith("COPY")}
    assert set(installed_packages()) <= copied
    assert "scenarios" in copied
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert lines[-2].startswith("ENTRYPOINT") and "nova-harness" in lines[-2]


def test_the_results_reader_mounts_the_masters_volume() -> None:
    reader = yaml.safe_load((K8S / "results-reader.yaml").read_text())
    kubernetes_validate.validate(reader, KUBERNETES_VERSION, strict=True)
    (volume,) = reader["spec"]["volumes"]
    assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in resources()
    assert reader["spec"]["activeDeadlineSeconds"] <= 3600  # it ends by itself
