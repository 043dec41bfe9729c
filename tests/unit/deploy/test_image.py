"""The Dockerfile, checked without a Docker engine: multi-stage from python:3.11-slim, pinned
by constraints.txt, no dev dependencies, a non-root user, a HEALTHCHECK whose script (run
here against a local HTTP server) works for both services, a console script as the command,
and a build context (.dockerignore) that holds what the build copies and nothing private.
The wheel the builder makes is built here from that same context and must carry the browser
client."""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import json
import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from tests.support.deploy import Instruction, Stage, dockerfile, dockerignored
from tests.support.paths import REPO_ROOT

_PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
_SCRIPTS: dict[str, str] = _PYPROJECT["project"]["scripts"]
_HEALTHCHECK = "/usr/local/bin/parlour-healthcheck"
_WEBCLIENT = ("index.html", "app.js", "protocol.js", "games/bigger_dice.js", "style.css")


def _builder() -> Stage:
    stages = dockerfile().stages
    (builder,) = [stage for stage in stages if stage.name == "builder"]
    return builder


def _copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in instruction.args.split() if not w.startswith("--")]
    return words[:-1]


def _exec_form(instruction: Instruction) -> list[str]:
    args = instruction.args.removeprefix("CMD").strip()
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"{instruction.keyword} is not in exec form: {args}"
    return [str(arg) for arg in parsed]


# --- stages, user, dependencies ---


def test_multi_stage_on_python_311_slim() -> None:
    image = dockerfile()
    assert len(image.stages) >= 2
    assert image.final.name == "runtime"
    for stage in image.stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    # the runtime takes the installed venv from the builder, not the source tree
    sources = [c.args for c in image.final.all("COPY") if "--from=" in c.args]
    assert sources == ["--from=builder /opt/parlour /opt/parlour"]


def test_the_runtime_runs_as_a_fixed_non_root_user() -> None:
    final = dockerfile().final
    users = final.all("USER")
    assert users, "the runtime stage never leaves root"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit(), "a numeric uid lets runAsNonRoot verify it"
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    created = " ".join(run.args for run in final.all("RUN"))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created
    # nothing after the switch goes back to root
    keywords = [i.keyword for i in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_the_build_is_pinned_by_constraints_txt() -> None:
    builder = _builder()
    workdir = builder.all("WORKDIR")[-1].args
    copies = [_copy_sources(c) for c in builder.all("COPY")]
    assert ["constraints.txt"] in copies
    envs = " ".join(e.args for e in builder.all("ENV"))
    assert f"PIP_CONSTRAINT={workdir}/constraints.txt" in envs
    # set before the first pip run, so pip's isolated build environment is pinned too
    keywords = [(i.keyword, i.args) for i in builder.instructions]
    first_pip = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "pip " in a)
    set_at = next(n for n, (k, a) in enumerate(keywords) if k == "ENV" and "PIP_CONSTRAINT" in a)
    assert set_at < first_pip


def test_no_dev_dependencies_reach_the_image() -> None:
    runs = [run.args for stage in dockerfile().stages for run in stage.all("RUN")]
    assert not [run for run in runs if "[dev]" in run or ".[" in run]
    installs = [
        found.strip()
        for run in runs
        for found in re.findall(r"pip (?:--python \S+ )?install ([^&]+)", run)
    ]
    assert installs == ["/wheels/parlour-*.whl"], installs
    assert "[" not in installs[0], "the wheel is installed without extras"


def test_the_command_is_a_console_script_of_either_service() -> None:
    final = dockerfile().final
    assert not final.all("ENTRYPOINT"), "the command alone picks the service"
    (cmd,) = final.all("CMD")
    assert _exec_form(cmd)[0] in _SCRIPTS
    assert set(_SCRIPTS) >= {"parlour-gateway", "parlour-engine"}
    for script, target in _SCRIPTS.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), script


def test_the_ports_exposed_are_the_services_defaults() -> None:
    (expose,) = dockerfile().final.all("EXPOSE")
    assert set(expose.args.split()) == {
        str(GatewaySettings.model_fields["ws_port"].default),
        str(GatewaySettings.model_fields["ws_health_port"].default),
        str(EngineSettings.model_fields["engine_health_port"].default),
    }


# --- the health check ---


def _healthcheck_script() -> str:
    final = dockerfile().final
    (copy,) = [c for c in final.all("COPY") if c.args.endswith(_HEALTHCHECK)]
    assert "--chmod=0755" in copy.args
    (body,) = copy.heredocs.values()
    return body


def test_the_healthcheck_runs_the_script_the_image_installs() -> None:
    (check,) = dockerfile().final.all("HEALTHCHECK")
    options, _, cmd = check.args.partition("CMD")
    assert json.loads(cmd) == [Path(_HEALTHCHECK).name]
    assert "--interval=" in options
    assert "--timeout=" in options
    assert _healthcheck_script().startswith("#!/opt/parlour/bin/python\n")


def test_the_healthcheck_defaults_to_both_services_ops_ports(tmp_path: Path) -> None:
    script = tmp_path / "parlour-healthcheck"
    script.write_text(_healthcheck_script())
    defaults = runpy.run_path(str(script), run_name="parlour_healthcheck")["DEFAULT_URLS"]
    gateway = GatewaySettings.model_fields["ws_health_port"].default
    engine = EngineSettings.model_fields["engine_health_port"].default
    assert set(defaults) == {
        f"http://127.0.0.1:{gateway}/health",
        f"http://127.0.0.1:{engine}/health",
    }


class _Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/health": 200, "/ready": 503}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest's output to the assertions


@pytest.fixture
def probe_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "env_urls", "healthy"),
    [
        (["/health"], None, True),
        (["/ready"], None, False),  # 503: not ready
        (["/missing"], None, False),
        (["closed"], None, False),
        ([], ["/health"], True),
        ([], ["closed", "/health"], True),  # any of them answering is enough
        ([], ["/ready", "closed"], False),
        (["/ready"], ["/health"], False),  # arguments win over the variable
    ],
)
def test_the_healthcheck_script_exit_status(
    tmp_path: Path,
    probe_server: str,
    args: list[str],
    env_urls: list[str] | None,
    healthy: bool,
) -> None:
    def url(path: str) -> str:
        return (
            f"http://127.0.0.1:{_closed_port()}/health" if path == "closed" else probe_server + path
        )

    script = tmp_path / "parlour-healthcheck"
    script.write_text(_healthcheck_script())
    env = {"PATH": os.environ.get("PATH", ""), "HTTP_PROXY": "http://127.0.0.1:9"}
    if env_urls is not None:
        env["PARLOUR_HEALTH_URL"] = " ".join(url(u) for u in env_urls)
    result = subprocess.run(
        [sys.executable, str(script), *(url(a) for a in args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == (0 if healthy else 1), result.stderr


# --- the build context ---


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    sources = [s for copy in _builder().all("COPY") for s in _copy_sources(copy)]
    assert sources, "the builder copies nothing"
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not dockerignored(source.rstrip("/")), f".dockerignore leaves out {source}"
    webclient = "clients/web"
    for name in _WEBCLIENT:
        assert not dockerignored(f"{webclient}/{name}")


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".infra/run/env",
        ".git/HEAD",
        "scripts/asyncapi_check/node_modules/x/package.json",
        "tests/unit/deploy/test_image.py",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        "services/gateway/parlour_gateway/__pycache__/app.cpython-311.pyc",
        ".keys/jwt_private.pem",
        "deploy/compose/.env",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert dockerignored(PurePosixPath(path))


def _context_copy(destination: Path) -> None:
    """The files of the Docker build context the builder copies, as Docker would send them."""
    for source in (s for c in _builder().all("COPY") for s in _copy_sources(c)):
        top = REPO_ROOT / source
        if top.is_file():
            shutil.copy2(top, destination / source)
            continue
        for directory, dirnames, filenames in os.walk(top):
            relative = Path(directory).relative_to(REPO_ROOT)
            dirnames[:] = [d for d in dirnames if not dockerignored((relative / d).as_posix())]
            for filename in filenames:
                if not dockerignored((relative / filename).as_posix()):
                    (destination / relative).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(Path(directory) / filename, destination / relative / filename)


def _builder_env(context: Path) -> dict[str, str]:
    """The builder's ENV, its WORKDIR (the source directory) moved to `context`."""
    env: dict[str, str] = {}
    workdir = _builder().all("WORKDIR")[-1].args
    for instruction in _builder().all("ENV"):
        for pair in shlex.split(instruction.args):
            key, _, value = pair.partition("=")
            env[key] = value.replace(workdir, str(context))
    return env


@pytest.mark.slow
def test_the_builder_stage_run_here_makes_a_venv_with_the_browser_client(tmp_path: Path) -> None:
    """The builder's RUN lines as they stand, run natively in a copy of the build context
    (paths moved under tmp_path; `python` and `pip` are this test run's): the pinned wheel
    build, the venv without pip, the install of the wheel's runtime dependencies under
    constraints.txt (from the package index, as in the image build), and the build's own
    check for the browser client and the console scripts."""
    context = tmp_path / "src"
    context.mkdir()
    _context_copy(context)
    env = {
        **os.environ,
        **_builder_env(context),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for run in _builder().all("RUN"):
        command = run.args.replace("/opt/parlour", f"{tmp_path}/opt/parlour")
        command = command.replace("/wheels", f"{tmp_path}/wheels")
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"RUN {run.args}\n{result.stdout}{result.stderr}"
    venv = tmp_path / "opt/parlour"
    assert not (venv / "bin/pip").exists(), "pip would ship in the runtime image"
    probe = subprocess.run(
        [str(venv / "bin/python"), "-c", "import pytest"], capture_output=True, check=False
    )
    assert probe.returncode != 0, "a dev dependency (pytest) is in the image's venv"
    (wheel,) = (tmp_path / "wheels").glob("parlour-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    for name in _WEBCLIENT:
        assert f"parlour_gateway/webclient/{name}" in names, f"the wheel lacks webclient/{name}"
    packages = {
        Path(p).name for p in _PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    }
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == packages
    for script, target in _SCRIPTS.items():
        assert f"{script} = {target}" in scripts
