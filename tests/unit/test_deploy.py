"""The deployment files agree with the code: compose sets only real settings, every
long-running service restarts and reports health, ingest scales out on a shared
subscription, and the dashboard queries only metrics the code exports."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

import yaml

from offsite.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BATCH_JOBS = {"migrate", "maintain", "simulator", "broker-auth"}
THIRD_PARTY_UI = {"prometheus", "grafana"}


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_compose_sets_only_settings_that_exist():
    fields = {f"OFFSITE_{name.upper()}" for name in Settings.model_fields}
    for name, svc in SERVICES.items():
        env = svc.get("environment") or {}
        unknown = {k for k in env if k.startswith("OFFSITE_")} - fields
        assert not unknown, f"{name} sets {unknown}, which no setting reads"


def test_long_running_services_restart_and_have_health_checks():
    for name, svc in SERVICES.items():
        if name in BATCH_JOBS:
            assert svc.get("restart") == "no", name
            continue
        assert svc.get("restart") == "unless-stopped", name
        if name not in THIRD_PARTY_UI:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_ingest_scales_out_on_a_shared_subscription_with_distinct_client_ids():
    ingest = SERVICES["ingest"]
    assert "replicas" in ingest["deploy"]
    env = _env("ingest")
    assert env["OFFSITE_MQTT_SHARED_GROUP"]
    assert "{hostname}" in env["OFFSITE_MQTT_CLIENT_ID"]
    assert "ports" not in ingest  # replicas cannot share a published port
    port = env["OFFSITE_METRICS_PORT"]
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["offsite-ingest"]["dns_sd_configs"][0]["port"] == int(port)


def test_client_id_expands_hostname(monkeypatch):
    import socket

    from offsite.ingest.service import client_id

    monkeypatch.setattr(socket, "gethostname", lambda: "c0ffee")
    assert (
        client_id(Settings(mqtt_client_id="offsite-ingest-{hostname}")) == "offsite-ingest-c0ffee"
    )
    assert client_id(Settings(mqtt_client_id="fixed")) == "fixed"


def test_dashboard_queries_only_exported_metrics():
    dash = json.loads((ROOT / "deploy/grafana/offsite-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    source = (ROOT / "ingest/metrics.py").read_text() + (ROOT / "api/metrics.py").read_text()
    names = {
        re.sub(r"_(total|bucket|count|sum)$", "", m)
        for e in exprs
        for m in re.findall(r"\boffsite_[a-z_]+", e)
    }
    assert names, "no metric found in the dashboard"
    missing = {n for n in names if f'"{n}"' not in source}
    assert not missing, f"dashboard queries metrics nobody exports: {missing}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


# -- compose, its env file and the image, read without Docker -----------------------------
ENV_EXAMPLE = ROOT / "deploy/.env.example"
DOCKERFILE = ROOT / "Dockerfile"
REQUIRED_SECRETS = {
    "OFFSITE_DB_PASSWORD",
    "OFFSITE_APP_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "OFFSITE_MQTT_PASSWORD",
    "OFFSITE_SIMULATOR_MQTT_PASSWORD",
    "OFFSITE_QR_SECRET",
}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ escapes
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
# a value filled in for a required secret the template leaves blank (random-looking, as
# `openssl rand -hex 32` gives: production refuses patterned secrets)
FILLED = hashlib.sha256(b"offsite deploy test").hexdigest()


def _uses() -> list[tuple[str, str | None, str]]:
    """Every interpolation in the compose file: (variable, operator or None, default/message)."""
    text = (ROOT / "docker-compose.yml").read_text().replace("$$", "")
    return [(m[1], m[2] or None, m[3] or "") for m in _VAR.finditer(text)]


def _example() -> dict[str, tuple[str, list[str]]]:
    """deploy/.env.example: variable → (value, the comment lines just above it)."""
    out: dict[str, tuple[str, list[str]]] = {}
    comments: list[str] = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#"):
            comments.append(line.lstrip("# "))
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name.strip()] = (value.strip(), comments)
            comments = []
        else:
            comments = []
    return out


def _interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's interpolation of one loaded value (strings inside lists and maps too)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2], m[3] or ""
        val = env.get(name)
        missing = val is None or (op is not None and op.startswith(":") and val == "")
        if op in (":?", "?") and missing:
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        if op in (":-", "-") and missing:
            return arg
        return val or ""

    return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def _example_env() -> dict[str, str]:
    """The example file as an operator fills it: blank secrets get a strong value."""
    return {k: (v or FILLED) for k, (v, _) in _example().items()}


def _offsite_services() -> dict[str, dict]:
    """The services that run the Offsite image (built from this repository)."""
    return {n: s for n, s in SERVICES.items() if s.get("build")}


def test_required_secrets_have_no_default_anywhere():
    uses = _uses()
    for name, op, arg in uses:
        if name in REQUIRED_SECRETS:
            assert op == ":?", f"${{{name}}} must be ${{{name}:?message}}, not {op!r}{arg!r}"
            assert arg.strip(), f"${{{name}:?}} needs a message saying what to set"
    assert {n for n, _, _ in uses} >= REQUIRED_SECRETS
    # a variable is either required everywhere or optional everywhere
    for name in {n for n, _, _ in uses}:
        ops = {op for n, op, _ in uses if n == name}
        assert not (":?" in ops and ops - {":?"}), f"{name} is required in one place only"


def test_every_interpolated_variable_is_documented_with_what_unset_means():
    example = _example()
    uses = _uses()
    for name, op, arg in uses:
        assert name in example, f"{name} is read by docker-compose.yml but not in {ENV_EXAMPLE}"
        value, comments = example[name]
        unset = [c for c in comments if c.startswith("Unset:")]
        assert unset, f"{name}: no 'Unset:' line above it in {ENV_EXAMPLE.name}"
        if op in (":?", "?"):
            assert "refuses" in unset[0], f"{name}: say that compose refuses to start"
            assert value == "", f"{name}: the template must not ship a value for a secret"
        elif op in (":-", "-"):
            assert unset[0] == f"Unset: {arg}", f"{name}: compose's default is {arg!r}"
            assert value == arg, f"{name}: the template should show the default {arg!r}"
    assert set(example) == {n for n, _, _ in uses}, "the template lists unused variables"


def test_compose_header_names_the_complete_start_command():
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:")[0]
    assert "cp deploy/.env.example deploy/.env" in header
    assert "docker compose --env-file deploy/.env up -d" in header


def test_every_offsite_service_command_parses_with_the_cli():
    from offsite.cli import build_parser

    env = _example_env()
    services = _offsite_services()
    assert {"migrate", "ingest", "api", "gateway", "broker-auth", "simulator"} <= set(services)
    for name, svc in services.items():
        command = _interpolate(svc["command"], env)
        assert isinstance(command, list), f"{name}: use the exec form (a list)"
        try:
            build_parser().parse_args(command)
        except SystemExit as exc:
            raise AssertionError(f"{name}: `offsite {' '.join(command)}` does not parse") from exc


def test_every_offsite_service_environment_is_accepted_by_settings(monkeypatch):
    from offsite.core.settings import load_settings

    env = _example_env()
    for name, svc in _offsite_services().items():
        environment = _interpolate(svc.get("environment") or {}, env)
        assert isinstance(environment, dict)
        for key in [k for k in os.environ if k.startswith("OFFSITE_")]:
            monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, str(value))
        settings = load_settings()  # raises SettingsError naming the variable
        assert settings.env == "production", name
        assert settings.database_url and "@db:5432/" in settings.database_url, name
        assert FILLED in settings.database_url, f"{name}: the DB password is not the secret"


# jobs that change the schema or storage policies log in as the owner; the rest do not
OWNER_JOBS = {"migrate", "maintain"}
INITDB = ROOT / "deploy/postgres/initdb"


def test_services_connect_as_the_limited_app_role_and_only_jobs_as_the_owner():
    from urllib.parse import urlsplit

    env = _example_env()
    owner = SERVICES["db"]["environment"]["POSTGRES_USER"]
    for name, svc in _offsite_services().items():
        url = _interpolate(svc["environment"]["OFFSITE_DATABASE_URL"], env)
        user = urlsplit(str(url)).username
        if name in OWNER_JOBS:
            assert user == owner, f"{name} must migrate/maintain as the owner {owner}"
            assert "${OFFSITE_DB_PASSWORD" in svc["environment"]["OFFSITE_DATABASE_URL"]
        else:
            assert user == "offsite_service", f"{name} connects as {user}, not the app role"
            assert "${OFFSITE_APP_DB_PASSWORD" in svc["environment"]["OFFSITE_DATABASE_URL"]
    # every service that stores or judges waits for the owner's jobs
    for name in ("ingest", "gateway"):
        assert "maintain" in SERVICES[name]["depends_on"], name


def test_the_database_creates_the_app_login_role_on_first_start():
    db = SERVICES["db"]
    mounts = [v for v in db["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro")]
    assert mounts == ["./deploy/postgres/initdb:/docker-entrypoint-initdb.d:ro"]
    assert db["environment"]["APP_DB_PASSWORD"].startswith("${OFFSITE_APP_DB_PASSWORD:?")
    scripts = sorted(INITDB.glob("*.sh"))
    assert scripts, "no init script creates the app login role"
    text = "\n".join(p.read_text() for p in scripts)
    assert "CREATE ROLE offsite_service LOGIN PASSWORD :'app_password' IN ROLE offsite_app" in text
    assert '-v app_password="$APP_DB_PASSWORD"' in text
    migration = (ROOT / "store/migrations/0007_security.sql").read_text()
    assert "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'offsite_app')" in migration


def _final_stage() -> list[str]:
    """The Dockerfile's last stage as logical lines (continuations joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def test_the_image_installs_the_wheel_on_a_pinned_base():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(bases) >= 2, "build the wheel in one stage, install it in another"
    for base in bases:
        image, _, digest = base.partition("@")
        tag = image.rpartition(":")[2] if ":" in image else ""
        pinned_tag = re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9.-]+)?", tag)
        assert pinned_tag or digest.startswith("sha256:"), f"base image {base} floats"
    final = _final_stage()
    copies = [ln for ln in final if ln.upper().startswith(("COPY", "ADD"))]
    assert copies and all("--from=" in ln for ln in copies), "the final stage copies source"
    assert any("pip install" in ln and ".whl" in ln for ln in final)
    assert "pip wheel" in text or "python -m build" in text


def test_the_build_stage_copies_every_folder_the_wheel_is_built_from():
    """The image once left out a folder the CLI imported (``bench/``): the stage that
    builds the wheel must copy every folder pyproject maps into the package."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(meta["tool"]["setuptools"]["package-dir"].values())
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    build = lines[froms[0] : froms[-1]]
    copied = {
        src.rstrip("/")
        for ln in build
        if ln.upper().startswith("COPY ") and "--from=" not in ln
        for src in ln.split()[1:-1]
    }
    assert folders <= copied, f"the build stage leaves out {sorted(folders - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied


def test_pyproject_lists_every_package_of_the_tree():
    """setuptools ships only the packages listed: a new subfolder left off the list works
    from the tree (editable install) and is missing from the wheel and the image."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for package, folder in tool["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in rel:
                found.add(".".join((package, *rel)))
    assert found == set(tool["packages"])


def test_third_party_images_are_pinned():
    for name, svc in SERVICES.items():
        image = svc.get("image")
        if image:
            tag = image.rpartition(":")[2] if ":" in image else "latest"
            assert re.search(r"\d+\.\d+", tag), f"{name}: image {image} floats"


def test_every_directory_a_service_writes_exists_and_belongs_to_the_user():
    final = _final_stage()
    users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must run as non-root"
    user = users[-1]
    made: set[str] = set()
    owned: set[str] = set()
    for ln in final:
        for cmd in re.split(r"&&|;", ln):
            words = cmd.split()
            if words[:1] == ["RUN"]:
                words = words[1:]
            if words[:1] == ["mkdir"]:
                made |= {w.rstrip("/") for w in words[1:] if not w.startswith("-")}
            if words[:1] == ["chown"]:
                args = [w for w in words[1:] if not w.startswith("-")]
                if args and args[0].split(":")[0] == user:
                    owned |= {w.rstrip("/") for w in args[1:]}
    writes: dict[str, str] = {}
    for name, svc in _offsite_services().items():
        for vol in svc.get("volumes") or []:
            parts = vol.split(":")
            if len(parts) >= 2 and not (len(parts) == 3 and "ro" in parts[2].split(",")):
                writes[parts[1].rstrip("/")] = name
    data_dir = re.search(r"OFFSITE_DATA_DIR=(\S+)", DOCKERFILE.read_text())
    assert data_dir, "the image sets OFFSITE_DATA_DIR to a directory it owns"
    writes[data_dir[1].rstrip("/")] = "every service (OFFSITE_DATA_DIR)"
    assert "/auth" in writes  # the broker-auth job writes the broker's files
    for target, who in writes.items():
        assert target in made, f"{target} ({who}) does not exist in the image"
        assert target in owned, f"{target} ({who}) is not chowned to {user}"
