"""The shipped deployment files cannot rot: deploy/systemd/*.service, compose.yaml, Dockerfile.

No systemd or container engine runs here, so: the files are parsed as those engines parse them;
every variable they set is one the settings read; every command they run exists; the image's
install steps are the README's; and every unit's ExecStart and every compose service's command
runs as a subprocess with the environment the file gives it, against PostgreSQL and Redis, until
its own probe (ExecStartPost / healthcheck) passes and the web's /readyz answers 200 with every
check ok. The running part needs the PostgreSQL pass (DATABASE_URL, REDIS_URL).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from django.core.management import get_commands

from tests.lightning.simnet_fixture import start_simnet
from tests.ops.deploy_files import (
    CODE_DIR,
    PROCESS_VARIABLES,
    VAR_DIR,
    compose,
    dockerfile_stages,
    env_assignments,
    exec_form,
    expand_specifiers,
    node_services,
    read_env_file,
    readme_install_commands,
    settings_variables,
    units,
)
from tests.ops.deploy_run import (
    base_environment,
    free_port_range,
    get_json,
    launch,
    localize,
    run_to_end,
    stop_all,
    wait_ready,
)
from tests.ops.scrape import METRICS_TOKEN, parse, pick
from tests.orders.price_server import PriceServer
from tests.relays.local_relay import LocalRelayProcess
from tests.relays.net import REPO_ROOT, free_port

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres") and bool(os.environ.get("REDIS_URL"))
needs_services = pytest.mark.skipif(not ON_POSTGRES, reason="runs the processes in the PostgreSQL + Redis pass")
HARDENING = {
    "User": "mostro",
    "Group": "mostro",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/srv/mostro/var",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
}
PROJECT_PACKAGES = ("mostro_site", "orders", "disputes", "lightning", "nostrbridge", "devfee")


def unit_commands(unit) -> list[list[str]]:
    lines = unit.values("Service", "ExecStart") + unit.values("Service", "ExecStartPost")
    return [line.split() for line in lines]


def resolve(argv: list[str]) -> None:
    """The program exists and is executable; a manage.py command is registered; a module imports."""
    program = Path(localize(argv, var_dir=REPO_ROOT / "var", ports={})[0])
    assert program.is_file(), f"{argv[0]} -> {program} does not exist"
    assert os.access(program, os.X_OK), f"{argv[0]} -> {program} is not executable"
    rest = argv[1:]
    if rest[:1] == ["manage.py"]:
        assert rest[1] in get_commands(), f"manage.py {rest[1]} is not a command"
    elif rest[:1] == ["-m"]:
        assert importlib.util.find_spec(rest[1]) is not None, f"python -m {rest[1]}: no such module"
    elif rest and rest[0].endswith(".py"):
        assert (REPO_ROOT / rest[0]).is_file(), f"{rest[0]} does not exist"
    elif program.name == "daphne":
        module, _, attribute = rest[-1].partition(":")
        assert importlib.util.find_spec(module) is not None, module
        assert re.search(rf"^{attribute} = ", (REPO_ROOT / (module.replace(".", "/") + ".py")).read_text(), re.M)


# --- the files themselves ------------------------------------------------------------------------


def test_units_are_the_documented_set_and_hardened():
    found = units()
    assert sorted(found) == [
        "mostro-bridge@.service",
        "mostro-jobs.service",
        "mostro-migrate.service",
        "mostro-watcher.service",
        "mostro-web.service",
        "mostro.service",
    ]
    for name, unit in found.items():
        for key, value in HARDENING.items():
            assert unit.value("Service", key) == value, (name, key)
        assert unit.value("Service", "EnvironmentFile") == "/srv/mostro/.env", name
        assert unit.value("Service", "WorkingDirectory") == "/srv/mostro", name
        assert unit.value("Install", "WantedBy") == "multi-user.target", name
        if name != "mostro-migrate.service":
            assert unit.value("Service", "Restart") == "on-failure", name
            assert unit.value("Service", "ExecStartPost"), f"{name} has no readiness probe"
        if name not in ("mostro.service", "mostro-migrate.service"):
            assert unit.value("Unit", "Requires") == "mostro-migrate.service", name
    assert found["mostro-jobs.service"].value("Service", "TimeoutStopSec") == "300"


def test_every_variable_the_files_set_is_read_by_the_settings():
    read = settings_variables() | set(PROCESS_VARIABLES)
    unit_vars = {name for unit in units().values() for name in unit.environment}
    compose_vars = {name for service in node_services(compose()).values() for name in service["environment"]}
    image_vars = {name for name in env_assignments(" ".join(dockerfile_stages()[-1].all("ENV")))}
    assert sorted(unit_vars - read) == []
    assert sorted(compose_vars - read) == []
    assert sorted(image_vars - read) == []
    assert {"MOSTRO_HEARTBEAT_FILE", "DJANGO_SETTINGS_MODULE"} <= unit_vars & compose_vars


def test_every_command_the_files_run_exists():
    commands = [command for unit in units().values() for command in unit_commands(unit)]
    for service in node_services(compose()).values():
        commands.append(service["command"])
        if not service.get("healthcheck", {}).get("disable"):
            commands.append(service["healthcheck"]["test"][1:])
    final = dockerfile_stages()[-1]
    commands.append(exec_form(final.all("CMD")[-1]))
    commands.append(exec_form(final.all("HEALTHCHECK")[-1].split(" CMD ", 1)[1]))
    assert len(commands) >= 20
    for command in commands:
        resolve([expand_specifiers(part, instance="1", runtime_dir=Path("/run")) for part in command])


def test_compose_has_the_split_processes_and_a_demo_profile():
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "bridge-1", "bridge-2", "watcher", "jobs",
                             "relay", "simnet"}  # fmt: skip
    demo = {name for name, service in services.items() if "demo" in service.get("profiles", [])}
    assert demo == {"relay", "simnet"}
    for name, service in node_services(spec).items():
        assert service["image"].startswith("mostro-django:"), name
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "mostro_site.settings.production", name
        if name not in demo | {"migrate"}:
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
            assert service["restart"] == "unless-stopped", name
    assert services["bridge-1"]["command"][-1] != services["bridge-2"]["command"][-1]  # distinct worker ids
    assert services["postgres"]["image"].startswith("postgres:15")  # = the image's pg_dump (bookworm: 15)


def test_the_image_is_multi_stage_non_root_with_a_health_check():
    stages = dockerfile_stages()
    build, final = stages[0], stages[-1]
    assert [stage.name for stage in stages] == ["build", ""]
    assert final.all("USER") == ["mostro"]
    assert final.all("HEALTHCHECK")[0].startswith("--interval=")
    assert [args for args in final.all("COPY")] == ["--from=build /srv/mostro /srv/mostro"]
    python = re.search(r"python:(\d+\.\d+)", final.base).group(1)
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert (requires, python) == (">=3.11", "3.11")
    copied = {args.split()[0].rstrip("/") for args in build.all("COPY")}
    assert set(PROJECT_PACKAGES) | {"templates", "static", "manage.py", "pyproject.toml"} <= copied
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
    top_level = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"}
    assert top_level == set(PROJECT_PACKAGES)  # a new app must be copied into the image too
    dockerignore = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".env", "var/", ".venv/"} <= set(dockerignore)


def test_the_image_installs_what_the_readme_says():
    build = dockerfile_stages()[0]
    extras_default = re.search(r'INSTALL_EXTRAS="([^"]*)"', " ".join(build.all("ARG"))).group(1)
    runs = [args.replace("${INSTALL_EXTRAS}", extras_default).replace('"', "") for args in build.all("RUN")]
    install = [command for command in runs if command.startswith("python3 -m venv") or "pip install" in command]
    assert install == readme_install_commands() == ["python3 -m venv .venv", ".venv/bin/pip install ."]


# --- running them ----------------------------------------------------------------------------------


@pytest.fixture
def deploy_db():
    """A database of its own on the pass's PostgreSQL server, created empty for each run."""
    base = os.environ["DATABASE_URL"].rsplit("/", 1)
    name = f"{base[1]}_deploy"
    admin = [f"{base[0]}/postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", *admin, "-c", sql], check=True, capture_output=True, timeout=60)
    yield f"{base[0]}/{name}"
    subprocess.run(["psql", *admin, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], timeout=60)


@pytest.fixture
def outside(tmp_path):
    """What the node talks to, outside the files under test: a price API."""
    with PriceServer() as prices:
        prices.set_json("/exrates/BTC", {"BTC": {"USD": 90_000.0}, "base": "BTC", "timestamp": 0})
        yield prices


def operator_env(**values: str) -> dict[str, str]:
    """The operator's .env for these runs."""
    return {
        "DJANGO_SECRET_KEY": "deploy-test-" + "k" * 40,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MOSTRO_NSEC_PRIVKEY": "2" * 64,
        "MOSTRO_FIAT_CURRENCIES_ACCEPTED": "USD",
        "MOSTRO_METRICS_TOKEN": METRICS_TOKEN,
        "MOSTRO_METRICS_FLUSH_SECONDS": "1",
        "MOSTRO_Q_WORKERS": "1",
        **values,
    }


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)


def all_checks_ok(body: dict) -> None:
    assert {name: check["state"] for name, check in body["checks"].items()} == dict.fromkeys(
        ("database", "lightning", "relays", "jobs", "prices"), "ok"
    ), body


@needs_services
@pytest.mark.slow
def test_every_unit_starts_with_its_environment_and_becomes_ready(tmp_path, deploy_db, outside):
    relay = LocalRelayProcess()
    relay.start()
    simnet = start_simnet(tmp_path / "simnet", ("mostro",))
    processes = []
    try:
        lnd = simnet.lnd_settings("mostro")
        env_file = tmp_path / "mostro.env"
        write_env_file(env_file, operator_env(
            DATABASE_URL=deploy_db, REDIS_URL=os.environ["REDIS_URL"], MOSTRO_RELAYS=relay.url,
            MOSTRO_BITCOIN_PRICE_API_URL=outside.url, MOSTRO_VAR_DIR=str(tmp_path / "var"), **lnd,
        ))  # fmt: skip
        runtime_dir, found = tmp_path / "run", units()
        ports = {"mostro.service": free_port(), "mostro-web.service": free_port()}

        def prepared(name: str) -> tuple[dict[str, str], list[list[str]], list[list[str]]]:
            unit = found[name]
            expand = {"instance": "1", "runtime_dir": runtime_dir}
            for directory in unit.values("Service", "RuntimeDirectory"):
                (runtime_dir / expand_specifiers(directory, **expand)).mkdir(parents=True, exist_ok=True)
            environment = {k: expand_specifiers(v, **expand) for k, v in unit.environment.items()}
            assert unit.value("Service", "EnvironmentFile") == f"{CODE_DIR}/.env"
            env = {**base_environment(), **environment, **read_env_file(env_file)}
            port = {"8000": ports.get(name, 8000)}

            def commands(key: str) -> list[list[str]]:
                lines = unit.values("Service", key)
                return [localize(expand_specifiers(line, **expand).split(), var_dir=tmp_path / "var", ports=port)
                        for line in lines]  # fmt: skip

            return env, commands("ExecStart"), commands("ExecStartPost")

        env, migrate, _ = prepared("mostro-migrate.service")
        for number, command in enumerate(migrate):
            run_to_end(f"migrate-{number}", command, env, tmp_path)
        probes = []
        for name in ("mostro.service", "mostro-web.service", "mostro-bridge@.service", "mostro-watcher.service",
                     "mostro-jobs.service"):  # fmt: skip
            env, [start], post = prepared(name)
            processes.append(launch(name, start, env, tmp_path))
            probes += [(name, command, env) for command in post]
        for name, command, env in probes:  # each unit's own readiness probe, as systemd runs it
            run_to_end(f"{name}-probe", command, env, tmp_path, timeout_s=150)
        processes[2].wait_for("READY")
        for name in ("mostro.service", "mostro-web.service"):
            all_checks_ok(wait_ready(f"http://127.0.0.1:{ports[name]}/readyz"))
        status, text = get_json(
            f"http://127.0.0.1:{ports['mostro-web.service']}/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        roles = {dict(key)["role"] for key in pick(parse(text), "mostro_process_heartbeat_age_seconds")}
        assert (status, roles) == (200, {"node", "web", "bridge", "watcher", "jobs"})
        assert_quiet(processes)
    finally:
        codes = stop_all(processes)
        relay.stop()
        simnet.stop()
    assert codes == {launched.name: 0 for launched in processes}, [p.output[-2000:] for p in processes]


@needs_services
@pytest.mark.slow
def test_every_compose_service_starts_with_its_environment_and_becomes_ready(tmp_path, deploy_db, outside):
    relay_port, lnd_port, web_port = free_port(), free_port_range(3), free_port()
    var_dir = tmp_path / "var"
    spec = compose({
        "DATABASE_URL": deploy_db, "REDIS_URL": os.environ["REDIS_URL"],
        "LND_GRPC_HOST": f"localhost:{lnd_port}", "MOSTRO_RELAYS": f"ws://127.0.0.1:{relay_port}",
    })  # fmt: skip
    services = node_services(spec)
    final = dockerfile_stages()[-1]
    image_env = env_assignments(" ".join(final.all("ENV")).replace("$PATH", "/usr/bin:/bin"))
    write_env_file(tmp_path / ".env", operator_env(MOSTRO_BITCOIN_PRICE_API_URL=outside.url))
    ports = {"7000": relay_port, "10009": lnd_port, "8000": web_port, "0.0.0.0": "127.0.0.1"}
    processes = []

    def container(name: str) -> tuple[dict[str, str], list[str]]:
        """The service's process: image ENV < env_file < environment, paths and ports localized."""
        service, own_tmp = services[name], tmp_path / name
        own_tmp.mkdir(exist_ok=True)
        [env_file] = service["env_file"]
        assert env_file == {"path": ".env", "required": False}
        layered = {**image_env, **read_env_file(tmp_path / ".env"), **service["environment"]}
        env = {**base_environment()}
        for key, value in layered.items():
            env[key] = localize([value], var_dir=var_dir, ports={}, tmp_dir=own_tmp)[0]
        env["PATH"] = base_environment()["PATH"]
        command = localize(service["command"], var_dir=var_dir, ports=ports, tmp_dir=own_tmp)
        return env, command

    def healthy(name: str) -> None:
        env, _ = container(name)
        probe = localize(services[name]["healthcheck"]["test"][1:], var_dir=var_dir, ports=ports,
                         tmp_dir=tmp_path / name)  # fmt: skip
        run_to_end(f"{name}-health", probe, env, tmp_path, timeout_s=30)

    try:
        for name in ("relay", "simnet"):  # the demo profile: the node's relay and Lightning network
            processes.append(launch(name, container(name)[1], container(name)[0], tmp_path))
            processes[-1].wait_for("READY")
        cert = x509.load_pem_x509_certificate((var_dir / "simnet" / "mostro" / "tls.cert").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "simnet" in names.get_values_for_type(x509.DNSName)  # the other containers verify it by name
        run_to_end("migrate", container("migrate")[1], container("migrate")[0], tmp_path)
        for name in ("web", "bridge-1", "bridge-2", "watcher", "jobs"):
            env, command = container(name)
            processes.append(launch(name, command, env, tmp_path))
        for name in ("relay", "simnet", "web", "bridge-1", "bridge-2", "watcher", "jobs"):
            healthy_within(name, healthy)
        all_checks_ok(wait_ready(f"http://127.0.0.1:{web_port}/readyz"))
        assert VAR_DIR in services["web"]["environment"]["LND_CERT_FILE"]
        assert_quiet(processes)
    finally:
        codes = stop_all(processes)
    assert codes == {launched.name: 0 for launched in processes}, [p.output[-2000:] for p in processes]


def assert_quiet(processes) -> None:
    """No process logged an error while starting (e.g. the channel layer's Redis reads timing out)."""
    errors = {p.name: [line for line in p.output.splitlines() if " ERROR " in line] for p in processes}
    assert {name: lines for name, lines in errors.items() if lines} == {}


def healthy_within(name: str, probe, attempts: int = 60) -> None:
    """Compose retries a failing health check; so does this, one second apart."""
    for attempt in range(attempts):
        try:
            probe(name)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
