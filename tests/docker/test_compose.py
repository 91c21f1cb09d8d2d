"""Static checks of docker/compose.yaml, docker/Dockerfile and .env.example (no Docker, no services).

Each `check_*` function returns a list of problems (empty = fine); the tests run them on the real files
and on deliberately broken in-memory copies, so a check that can never fail is itself a failure.

* commands: every extplane service runs `python -m <module>` of a module that exists and runs as a
  script; its `--flags` appear in that module's source; its health probe is such a module too;
* settings: every variable an extplane service sets is `EXT_<field>` of the settings class its process
  reads (no typos, nothing ignored silently); with the `.env.example` values filled in, each settings
  class builds under `EXT_ENV=prod`, so every value the prod validators demand is provided and valid;
  each secret the validators require (found by probing them, not by a list kept here) and every
  `SecretStr` field is a required `${VAR:?...}` placeholder, never a literal;
* wiring: depends_on targets exist; `service_healthy` targets have a health check and
  `service_completed_successfully` targets are one-shots; every long-running service has a health
  check; a service that names another in an `EXT_*` URL depends on it; the gateway lists every runner;
* build: the Dockerfile is python:3.11-slim based, installs with `pip install -c constraints.txt .`,
  runs as a non-root user, and every COPY source exists; compose's build context and bind mounts exist;
* .env.example documents every variable compose interpolates (and nothing else);
* only keys Compose knows appear at the top level, in services and in health checks, and every
  `depends_on` condition is one Compose accepts, so a misspelled or misplaced key fails here rather than
  at `docker compose up`.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import secrets
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import SecretStr, ValidationError

from api.operator.settings import OperatorSettings
from core.crypto import Keyring
from core.settings import ApiSettings, CommonSettings, RunnerSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
# The subset of the Compose Specification this deployment may use; anything else is a typo here.
TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets"}
SERVICE_KEYS = {
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "depends_on",
    "healthcheck",
    "volumes",
    "ports",
    "expose",
    "restart",
    "user",
    "profiles",
    "networks",
    "deploy",
    "working_dir",
    "mem_limit",
    "cpus",
    "init",
    "stop_grace_period",
    "stop_signal",
    "tmpfs",
    "read_only",
    "ulimits",
    "labels",
    "hostname",
    "container_name",
    "logging",
    "extra_hosts",
    "cap_drop",
    "security_opt",
    "shm_size",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_ON_KEYS = {"condition", "restart", "required"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# Which settings class each entry point builds (its `main`). A new entry point must be added here.
SETTINGS_BY_MODULE: dict[str, type[CommonSettings]] = {
    "workflows.worker": WorkerSettings,
    "runner": RunnerSettings,
    "api.gateway": ApiSettings,
    "api.operator": OperatorSettings,
    "core.migrate_main": CommonSettings,
    "core.temporal_setup": CommonSettings,
}
# Not demanded by a validator, but a deployment without them is broken or weaker: no bootstrap admin
# (operator API), UI sessions keyed from the runner secret (gateway).
DEPLOYMENT_REQUIRED: dict[type[CommonSettings], set[str]] = {
    OperatorSettings: {"EXT_ADMIN_TOKEN"},
    ApiSettings: {"EXT_ADMIN_TOKEN", "EXT_UI_SESSION_SECRET"},
}
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


# Variables a process reads that are not extplane settings: uvicorn's proxy-header trust list.
NON_SETTING_ENV = {"FORWARDED_ALLOW_IPS"}

# ---- loading and interpolation ----------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def load_env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=value: {line!r}"
        out[key.strip()] = value.strip()
    return out


def filled_env(example: Mapping[str, str]) -> dict[str, str]:
    """The .env an operator writes: every blank (REQUIRED) value replaced by a strong random one."""
    out = dict(example)
    for key, value in example.items():
        if not value:
            out[key] = Keyring.generate_entry(1) if key == "EXT_MASTER_KEYS" else secrets.token_hex(24)
    return out


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `$$`."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op") or "", m.group("arg") or ""
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?") and (current is None or (op == ":?" and not current)):
            raise KeyError(f"{name}: {arg}")
        return current or ""

    parts = value.split("$$")
    return "$".join(_VAR.sub(sub, p) for p in parts)


def variables(value: str) -> list[tuple[str, str]]:
    """(name, operator) of every interpolation in `value` (escaped `$$` skipped)."""
    out = []
    for part in value.split("$$"):
        for m in _VAR.finditer(part):
            out.append((m.group("braced") or m.group("bare"), m.group("op") or ""))
    return out


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def environment(svc: Mapping[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(svc: Mapping[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def is_extplane(svc: Mapping[str, Any]) -> bool:
    build = svc.get("build") or {}
    return isinstance(build, dict) and build.get("dockerfile") == "docker/Dockerfile"


def is_one_shot(svc: Mapping[str, Any]) -> bool:
    return str(svc.get("restart", "no")) == "no" and "profiles" not in svc


def entry_module(cmd: list[str]) -> str | None:
    if len(cmd) >= 3 and cmd[0] in ("python", "python3") and cmd[1] == "-m":
        return cmd[2]
    return None


def extplane_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if is_extplane(svc)}


@contextmanager
def process_env(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ as a container would see it: no EXT_* from the test process, then `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        yield


def field_env_names(cls: type[CommonSettings]) -> dict[str, str]:
    return {f"EXT_{name.upper()}": name for name in cls.model_fields}


def prod_required_secrets(cls: type[CommonSettings]) -> set[str]:
    """The `EXT_*` secrets whose absence a prod validator refuses, found by probing the class."""
    secret_vars = {
        env: name
        for env, name in field_env_names(cls).items()
        if cls.model_fields[name].annotation is SecretStr
    }
    strong = {env: Keyring.generate_entry(1) for env in secret_vars}
    required: set[str] = set()
    for env in secret_vars:
        probe = {"EXT_ENV": "prod", **{k: v for k, v in strong.items() if k != env}}
        with process_env(probe):
            try:
                cls()
            except ValidationError:
                required.add(env)
    return required


# ---- checks -----------------------------------------------------------------------------------------


def module_source(module: str) -> tuple[str, str]:
    """(source that runs for `python -m module`, "") or ("", why it cannot run)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        return "", f"module {module!r} does not exist"
    if spec.submodule_search_locations is not None:  # a package: needs __main__
        main = importlib.util.find_spec(f"{module}.__main__")
        if main is None or main.origin is None:
            return "", f"package {module!r} has no __main__"
        return Path(main.origin).read_text(), ""
    source = Path(spec.origin).read_text()
    if 'if __name__ == "__main__"' not in source:
        return "", f'module {module!r} has no `if __name__ == "__main__"` entry'
    return source, ""


def _check_entry(where: str, cmd: list[str]) -> list[str]:
    module = entry_module(cmd)
    if module is None:
        return [f"{where}: command {cmd!r} is not `python -m <module> ...`"]
    source, error = module_source(module)
    if error:
        return [f"{where}: {error}"]
    problems = []
    for arg in cmd[3:]:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and f'"{flag}"' not in source:
            problems.append(f"{where}: {module} has no option {flag}")
    return problems


def check_commands(compose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    services = extplane_services(compose)
    if not services:
        return ["no extplane service (build: docker/Dockerfile) in compose"]
    for name, svc in services.items():
        cmd = command(svc)
        problems += _check_entry(name, cmd)
        module = entry_module(cmd)
        if module is not None and module not in SETTINGS_BY_MODULE:
            problems.append(f"{name}: entry {module} has no known settings class (SETTINGS_BY_MODULE)")
        test = (svc.get("healthcheck") or {}).get("test") or []
        if test and test[0] == "CMD" and entry_module(test[1:]) is not None:
            problems += _check_entry(f"{name} healthcheck", [str(t) for t in test[1:]])
    return problems


def check_env_fields(compose: Mapping[str, Any]) -> list[str]:
    """Every variable an extplane service sets is a field of its process's settings class."""
    problems: list[str] = []
    for name, svc in extplane_services(compose).items():
        cls = SETTINGS_BY_MODULE.get(entry_module(command(svc)) or "")
        if cls is None:
            continue  # reported by check_commands
        fields = field_env_names(cls)
        for key in environment(svc):
            if key not in fields and key not in NON_SETTING_ENV:
                problems.append(f"{name}: {key} is not a setting of {cls.__name__} (typo or wrong service?)")
    return problems


def check_prod_settings(compose: Mapping[str, Any], env_file: Mapping[str, str]) -> list[str]:
    """EXT_ENV=prod; required secrets are required placeholders; settings build in prod."""
    problems: list[str] = []
    for name, svc in extplane_services(compose).items():
        cls = SETTINGS_BY_MODULE.get(entry_module(command(svc)) or "")
        if cls is None:
            continue
        env = environment(svc)
        if env.get("EXT_ENV") != "prod":
            problems.append(f"{name}: EXT_ENV must be prod (is {env.get('EXT_ENV')!r})")
        fields = field_env_names(cls)
        secret_vars = {k for k, f in fields.items() if cls.model_fields[f].annotation is SecretStr}
        required = prod_required_secrets(cls) | DEPLOYMENT_REQUIRED.get(cls, set())
        for var in sorted(required - env.keys()):
            problems.append(f"{name}: {cls.__name__} requires {var} in prod, compose does not set it")
        for var in sorted((required | secret_vars) & env.keys()):
            if variables(env[var]) != [(var, ":?")] or env[var] != env[var].strip():
                problems.append(f"{name}: {var} must be exactly ${{{var}:?...}} (a required placeholder)")
        try:
            resolved = {k: interpolate(v, env_file) for k, v in env.items()}
        except KeyError as exc:
            problems.append(f"{name}: unset required variable {exc}")
            continue
        with process_env(resolved):
            try:
                cls()
            except ValidationError as exc:
                first = exc.errors()[0]
                problems.append(f"{name}: {cls.__name__} refuses the environment: {first['msg']}")
    return problems


def _hosts(value: str) -> set[str]:
    """Host names in a URL / address setting (a comma-separated list is allowed)."""
    value = _VAR.sub("x", value.replace("$$", ""))  # a placeholder may hold `?` or spaces
    hosts = set()
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        parts = urlsplit(item if "://" in item else f"tcp://{item}")
        if parts.hostname:
            hosts.add(parts.hostname)
    return hosts


def check_wiring(compose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    services: dict[str, dict[str, Any]] = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            target = services.get(dep)
            if target is None:
                problems.append(f"{name}: depends_on unknown service {dep!r}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy" and not (target.get("healthcheck") or {}).get("test"):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            elif condition == "service_completed_successfully" and not is_one_shot(target):
                problems.append(f"{name}: waits for {dep} to complete, but {dep} is not a one-shot")
            elif condition not in ("service_healthy", "service_completed_successfully", "service_started"):
                problems.append(f"{name}: unknown depends_on condition {condition!r}")
        long_running = not is_one_shot(svc) and "profiles" not in svc
        if long_running and not (svc.get("healthcheck") or {}).get("test"):
            problems.append(f"{name}: long-running service without a healthcheck")
        if is_extplane(svc):
            for key, value in environment(svc).items():
                for host in _hosts(value) if key.endswith(("_URL", "_ADDRESS")) else set():
                    if host in services and host not in deps:
                        problems.append(f"{name}: {key} points at {host} but {name} does not depend on it")
    runners = [n for n, s in extplane_services(compose).items() if entry_module(command(s)) == "runner"]
    gateways = [n for n, s in extplane_services(compose).items() if entry_module(command(s)) == "api.gateway"]
    for gw in gateways:
        listed = _hosts(environment(services[gw]).get("EXT_RUNNER_URL", ""))
        for runner in runners:
            if runner not in listed:
                problems.append(f"{gw}: EXT_RUNNER_URL does not list {runner}")
    return problems


def check_dockerfile(text: str, root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    lines = [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    args = {}
    for ln in instructions:
        if ln.upper().startswith("ARG ") and "=" in ln:
            key, _, val = ln[4:].partition("=")
            args[key.strip()] = val.strip()
    bases = [ln.split()[1] for ln in instructions if ln.upper().startswith("FROM ")]
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), b) for b in bases]
    if not bases or not all(b.startswith("python:3.11-slim") for b in bases):
        problems.append(f"base images must be python:3.11-slim*, got {bases}")
    if not any(re.search(r"pip install -c constraints\.txt \.(\s|$)", ln) for ln in instructions):
        problems.append("no `pip install -c constraints.txt .`")
    users = [ln.split()[1] for ln in instructions if ln.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final USER must be non-root, got {users}")
    for ln in instructions:
        if not ln.upper().startswith(("COPY ", "ADD ")):
            continue
        words = [w for w in shlex.split(ln)[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in shlex.split(ln)):
            continue
        for src in words[:-1]:
            if not (root / src).exists():
                problems.append(f"COPY source {src!r} does not exist")
    return problems


def check_build_and_mounts(compose: Mapping[str, Any], compose_dir: Path = DOCKER) -> list[str]:
    problems: list[str] = []
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if isinstance(build, dict):
            context = (compose_dir / build.get("context", ".")).resolve()
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            elif not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: dockerfile {build.get('dockerfile')} does not exist")
        for vol in svc.get("volumes") or []:
            src = str(vol).split(":")[0] if isinstance(vol, str) else str(vol.get("source", ""))
            if src.startswith((".", "/")) and not (compose_dir / src).exists():
                problems.append(f"{name}: bind mount source {src} does not exist")
            elif not src.startswith((".", "/")) and src not in (compose.get("volumes") or {}):
                problems.append(f"{name}: named volume {src!r} is not declared")
    return problems


def check_env_example(compose: Mapping[str, Any], example: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    used: dict[str, str] = {}
    for s in strings(compose):
        for var, op in variables(s):
            used[var] = op if op in (":?", "?") else used.get(var, op)
    for var, op in sorted(used.items()):
        if var not in example:
            problems.append(f".env.example does not document {var}")
        elif op in (":?", "?") and example[var]:
            problems.append(f".env.example must leave required {var} blank (a real value goes in .env)")
    for var in sorted(example.keys() - used.keys()):
        problems.append(f".env.example lists {var}, which compose never uses")
    return problems


def check_compose_spec(compose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in sorted(set(compose) - TOP_LEVEL_KEYS):
        if not str(key).startswith("x-"):
            problems.append(f"<root>: unknown top-level key {key!r}")
    for name, svc in sorted((compose.get("services") or {}).items()):
        for key in sorted(set(svc) - SERVICE_KEYS):
            if not str(key).startswith("x-"):
                problems.append(f"services.{name}: unknown key {key!r}")
        for key in sorted(set(svc.get("healthcheck") or {}) - HEALTHCHECK_KEYS):
            problems.append(f"services.{name}.healthcheck: unknown key {key!r}")
        deps = svc.get("depends_on") or {}
        for dep, spec in sorted(deps.items()) if isinstance(deps, dict) else []:
            for key in sorted(set(spec or {}) - DEPENDS_ON_KEYS):
                problems.append(f"services.{name}.depends_on: {dep} has unknown key {key!r}")
            condition = (spec or {}).get("condition", "service_started")
            if condition not in CONDITIONS:
                problems.append(f"services.{name}.depends_on: {dep} has unknown condition {condition!r}")
    return problems


def all_problems(compose: Mapping[str, Any], example: Mapping[str, str], dockerfile: str) -> list[str]:
    return [
        *check_commands(compose),
        *check_env_fields(compose),
        *check_prod_settings(compose, filled_env(example)),
        *check_wiring(compose),
        *check_build_and_mounts(compose),
        *check_env_example(compose, example),
        *check_dockerfile(dockerfile),
        *check_compose_spec(compose),
    ]


# ---- the real files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return load_env_example()


def test_compose_parses_with_the_expected_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    by_module: dict[str, list[str]] = {}
    for name, svc in extplane_services(compose).items():
        by_module.setdefault(entry_module(command(svc)) or "?", []).append(name)
    assert len(by_module["workflows.worker"]) >= 2
    assert len(by_module["runner"]) >= 2
    assert by_module["api.gateway"] and by_module["api.operator"]
    assert by_module["core.migrate_main"] and by_module["core.temporal_setup"]
    images = {name: str(svc.get("image", "")) for name, svc in services.items()}
    assert any(i.startswith(("temporalio/server", "temporalio/auto-setup")) for i in images.values())
    assert any(i.startswith("temporalio/ui") for i in images.values())
    assert sum(i.startswith("postgres:") for i in images.values()) >= 2  # Temporal's and the registry
    assert sum(i.startswith("redis:") for i in images.values()) >= 2  # main and debug stream


def test_compose_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert check_compose_spec(compose) == []


def test_commands_name_runnable_modules(compose: dict[str, Any]) -> None:
    assert check_commands(compose) == []


def test_every_variable_is_a_setting_of_its_process(compose: dict[str, Any]) -> None:
    assert check_env_fields(compose) == []


def test_prod_settings_are_complete_and_secrets_are_placeholders(
    compose: dict[str, Any], example: dict[str, str]
) -> None:
    assert check_prod_settings(compose, filled_env(example)) == []


def test_wiring_depends_on_and_healthchecks(compose: dict[str, Any]) -> None:
    assert check_wiring(compose) == []


def test_build_context_and_mounts_exist(compose: dict[str, Any]) -> None:
    assert check_build_and_mounts(compose) == []


def test_env_example_documents_every_variable(compose: dict[str, Any], example: dict[str, str]) -> None:
    assert check_env_example(compose, example) == []


def test_dockerfile(compose: dict[str, Any]) -> None:
    assert check_dockerfile(DOCKERFILE.read_text()) == []


def test_blob_store_is_one_shared_volume(compose: dict[str, Any]) -> None:
    for name, svc in extplane_services(compose).items():
        module = entry_module(command(svc))
        mounts = [str(v) for v in svc.get("volumes") or []]
        if module in ("workflows.worker", "api.operator"):
            assert "blobs:/data" in mounts, name  # they write bundles, artifacts, staged uploads
        if module == "runner":
            assert any(m.startswith("blobs:/data") for m in mounts), name
        if module in ("workflows.worker", "api.operator", "runner"):
            assert environment(svc)["EXT_DATA_DIR"] == "/data", name


def test_probe_finds_the_prod_validators() -> None:
    """The probe behind check_prod_settings sees what core/settings.py enforces."""
    assert prod_required_secrets(RunnerSettings) == {"EXT_RUNNER_AUTH"}
    assert prod_required_secrets(WorkerSettings) == {"EXT_MASTER_KEYS", "EXT_RUNNER_AUTH"}
    assert prod_required_secrets(OperatorSettings) >= {"EXT_RUNNER_AUTH", "EXT_MASTER_KEYS"}


# ---- the checks can fail: deliberately broken in-memory copies -------------------------------------


def _broken(compose: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(compose)
    # YAML merge keys share nested mappings between services: give each service its own copies.
    for name, svc in out["services"].items():
        out["services"][name] = copy.deepcopy(svc)
    return out


def test_a_missing_required_secret_is_caught(compose: dict[str, Any], example: dict[str, str]) -> None:
    broken = _broken(compose)
    del broken["services"]["worker-1"]["environment"]["EXT_MASTER_KEYS"]
    problems = check_prod_settings(broken, filled_env(example))
    assert any("worker-1: WorkerSettings requires EXT_MASTER_KEYS" in p for p in problems), problems
    assert not any(p.startswith("worker-2:") for p in problems), problems


def test_a_literal_or_weak_secret_is_caught(compose: dict[str, Any], example: dict[str, str]) -> None:
    broken = _broken(compose)
    broken["services"]["gateway"]["environment"]["EXT_RUNNER_AUTH"] = "changeme"
    problems = check_prod_settings(broken, filled_env(example))
    assert any("gateway: EXT_RUNNER_AUTH must be exactly" in p for p in problems), problems
    assert any("gateway: ApiSettings refuses the environment" in p for p in problems), problems


def test_dev_env_is_caught(compose: dict[str, Any], example: dict[str, str]) -> None:
    broken = _broken(compose)
    broken["services"]["runner-2"]["environment"]["EXT_ENV"] = "dev"
    problems = check_prod_settings(broken, filled_env(example))
    assert any("runner-2: EXT_ENV must be prod" in p for p in problems), problems


def test_a_typo_in_a_variable_name_is_caught(compose: dict[str, Any]) -> None:
    broken = _broken(compose)
    env = broken["services"]["gateway"]["environment"]
    env["EXT_RUNER_URL"] = env.pop("EXT_RUNNER_URL")
    assert check_env_fields(broken) == [
        "gateway: EXT_RUNER_URL is not a setting of ApiSettings (typo or wrong service?)"
    ]
    # a worker setting on the runner is a wrong-service mistake, also caught
    broken["services"]["runner-1"]["environment"]["EXT_WORKER_QUEUES"] = "control"
    assert any(p.startswith("runner-1: EXT_WORKER_QUEUES") for p in check_env_fields(broken))


def test_a_wrong_entry_point_is_caught(compose: dict[str, Any]) -> None:
    broken = _broken(compose)
    broken["services"]["worker-2"]["command"] = ["python", "-m", "workflows.workr"]
    broken["services"]["operator-api"]["command"] = ["python", "-m", "api.operator", "--prot", "8090"]
    problems = check_commands(broken)
    assert "worker-2: module 'workflows.workr' does not exist" in problems, problems
    assert "operator-api: api.operator has no option --prot" in problems, problems


def test_missing_healthcheck_and_dependency_are_caught(compose: dict[str, Any]) -> None:
    broken = _broken(compose)
    del broken["services"]["runner-2"]["healthcheck"]
    del broken["services"]["gateway"]["depends_on"]["redis"]
    broken["services"]["gateway"]["environment"]["EXT_RUNNER_URL"] = "http://runner-1:8091"
    problems = check_wiring(broken)
    assert "runner-2: long-running service without a healthcheck" in problems, problems
    assert "gateway: waits for runner-2 to be healthy, but runner-2 has no healthcheck" in problems
    assert "gateway: EXT_REDIS_URL points at redis but gateway does not depend on it" in problems
    assert "gateway: EXT_RUNNER_URL does not list runner-2" in problems


def test_dockerfile_problems_are_caught() -> None:
    text = DOCKERFILE.read_text()
    text = text.replace("COPY runner/ runner/", "COPY runnr/ runnr/", 1)
    text = text.replace("USER extplane:extplane", "USER root")
    text = text.replace("python:3.11-slim-bookworm", "python:3.12")
    problems = check_dockerfile(text)
    assert "COPY source 'runnr/' does not exist" in problems, problems
    assert any("non-root" in p for p in problems), problems
    assert any("python:3.11-slim" in p for p in problems), problems


def test_env_example_drift_is_caught(compose: dict[str, Any], example: dict[str, str]) -> None:
    broken = dict(example)
    del broken["EXT_MASTER_KEYS"]
    broken["EXT_ADMIN_TOKEN"] = "hunter2-committed-by-mistake"
    broken["UNUSED_KNOB"] = "1"
    problems = check_env_example(compose, broken)
    assert ".env.example does not document EXT_MASTER_KEYS" in problems
    assert any("leave required EXT_ADMIN_TOKEN blank" in p for p in problems)
    assert ".env.example lists UNUSED_KNOB, which compose never uses" in problems


def test_a_misspelled_key_breaks_the_specification(compose: dict[str, Any]) -> None:
    broken = _broken(compose)
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"].pop("healthcheck")
    broken["services"]["runner-1"]["depends_on"]["postgres"]["condition"] = "service_ready"
    problems = check_compose_spec(broken)
    assert any(p.startswith("services.gateway:") and "helthcheck" in p for p in problems), problems
    assert any(p.startswith("services.runner-1.depends_on:") for p in problems), problems


def test_all_problems_on_the_real_files(compose: dict[str, Any], example: dict[str, str]) -> None:
    assert all_problems(compose, example, DOCKERFILE.read_text()) == []


def test_interpolation_helper() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("x${A}y$A${B:-d}${EMPTY:-e}${EMPTY-f}$$A", env) == "x1y1de$A"
    with pytest.raises(KeyError):
        interpolate("${B:?needed}", env)
    assert variables("${A:?x} $$B ${C:-y}") == [("A", ":?"), ("C", ":-")]
