"""docker-compose.yml cannot run here (no Docker engine); its shape is checked instead."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict[str, dict[str, object]]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, dict[str, object]] = document["services"]
    return services


def test_services_ports_and_healthchecks() -> None:
    services = load()
    assert set(services) == {"postgres", "redis", "api", "nginx-rtmp", "prometheus", "grafana"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"], name  # type: ignore[index]
        ports = service.get("ports")
        assert isinstance(ports, list) and ports, name
        assert all(str(p).startswith("127.0.0.1:") for p in ports), f"{name} binds beyond loopback"
    assert "127.0.0.1:1935:1935" in services["nginx-rtmp"]["ports"]  # type: ignore[operator]


def test_api_environment_matches_the_service_settings() -> None:
    from stack.service.config import settings_from_env

    env = dict(load()["api"]["environment"])  # type: ignore[call-overload]
    env["NOVA_JWT_SECRET"] = "x" * 32
    settings = settings_from_env({k: str(v) for k, v in env.items()})
    assert settings.database_url.startswith("postgresql://postgres@postgres:5432/")


def test_build_files_exist_and_nginx_conf_matches_the_contract() -> None:
    services = load()
    assert services["api"]["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    build = services["nginx-rtmp"]["build"]
    assert isinstance(build, dict)
    assert (ROOT / str(build["dockerfile"])).exists()
    conf = (ROOT / "deploy/compose/nginx.conf").read_text()
    assert "on_publish http://api:8080/api/v1/streams/auth;" in conf
    assert "hls_fragment_naming system;" in conf


def test_the_monitoring_profile_loads_the_rules_and_the_dashboard() -> None:
    services = load()
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    mounted = {Path(rule).name for rule in config["rule_files"]}
    assert mounted == {"nova-streaming-alerts.yml"}
    assert (ROOT / "deploy/prometheus" / mounted.pop()).exists()
    assert {job["job_name"] for job in config["scrape_configs"]} == {"nova", "nova-harness"}
    volumes = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes  # type: ignore[operator]
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/nova-harness.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def installed_packages() -> list[str]:
    """The top-level packages `pip install .` installs (pyproject's find include)."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    return [name.rstrip("*") for name in include]


def test_the_image_copies_every_package_it_installs() -> None:
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ")}
    missing = [p for p in installed_packages() if p not in copied]
    assert not missing, f"the Dockerfile does not copy {missing} (pip install . would miss them)"
