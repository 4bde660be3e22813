"""Fixtures that run the real GIMP 3 headless (natively on Debian 13, else in the chroot of .ci/hosts/gimp.sh)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gimp_plugin.install import install_plugin_files

REPO = Path(__file__).resolve().parents[2]
GIMP_SH = REPO / ".ci" / "hosts" / "gimp.sh"
CACHE = Path(os.environ.get("ADAIN_HOST_CACHE") or Path.home() / ".cache" / "adain-hosts")
ENGINE_PYTHON = CACHE / "venv" / "bin" / "python"


@dataclass
class GimpHost:
    mode: str
    engine_python: Path

    def run_batch(self, work: Path, params: dict, *, env: dict[str, str] | None = None, gui: bool = False,
                  binds: list[Path] = (), timeout: float = 300,
                  own_plugin: bool = True) -> subprocess.CompletedProcess[str]:
        """Run tests/gimp_plugin/gimp_batch.py in gimp-console-3.0 with our plug-in, installed as
        ``adain install gimp`` does into ``work/plug-ins``, and an isolated profile.

        ``work`` and ``binds`` are bound into the GIMP root at the same paths; results come back in
        ``work/results.json``. The profile is ``work/gimp-config`` (``$GIMP3_DIRECTORY``) and ``$HOME`` is
        ``work/home``; ``own_plugin=False`` leaves GIMP with its standard plug-in folders only (the test ran
        ``adain install gimp`` into the profile itself).
        ``gui``: run the full ``gimp-3.0`` on a private Xvfb instead (for what only the UI can do, like undo).
        """
        config_dir, home = work / "gimp-config", work / "home"
        config_dir.mkdir(exist_ok=True)
        home.mkdir(exist_ok=True)
        extra = ""
        if own_plugin:
            plugins = work / "plug-ins"
            if not plugins.exists():
                install_plugin_files(plugins)
            extra = f":{plugins}"
        (config_dir / "gimprc").write_text(
            f'(plug-in-path "${{gimp_dir}}/plug-ins:${{gimp_plug_in_dir}}/plug-ins{extra}")\n')
        params = dict(params, work=str(work))
        (work / "params.json").write_text(json.dumps(params))
        variables = {
            "PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "GIMP3_DIRECTORY": str(config_dir),
            "ADAIN_WORKER_DIR": str(work / "worker"), "ADAIN_WORKER_IDLE_TIMEOUT": "120",
            **(env or {}),
        }
        script = REPO / "tests" / "gimp_plugin" / "gimp_batch.py"
        batch = f"PARAMS = {str(work / 'params.json')!r}; exec(open({str(script)!r}).read())"
        gimp = ["gimp-console-3.0", "-i", "--batch-interpreter=python-fu-eval", "-b", batch, "--quit"]
        if gui:
            # -displayfd: Xvfb picks a free display (abstract X sockets are shared with the host's other tests).
            (config_dir / "gimprc").write_text((config_dir / "gimprc").read_text() + "(show-welcome-dialog no)\n")
            display = work / "display"
            start_x = (f'Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"{display}" 2>"{work}/xvfb.log" &'
                       f' for i in $(seq 100); do [ -s "{display}" ] && break; sleep 0.1; done;'
                       f' export DISPLAY=":$(cat "{display}")"; exec gimp-3.0 --no-splash "$@"')
            gimp = ["sh", "-c", start_x, "gimp", "--batch-interpreter=python-fu-eval", "-b", batch, "--quit"]
        bind_args = [arg for path in (*binds, work) for arg in ("--bind", str(path))]
        command = ["bash", str(GIMP_SH), "exec", *bind_args, "--", "env", "-i",
                   *(f"{k}={v}" for k, v in variables.items()), *gimp]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def gimp_host(missing_host) -> GimpHost:
    def host_missing(reason: str) -> None:
        missing_host(f"GIMP 3 host not available: {reason}")

    if os.name != "posix" or os.geteuid() != 0:
        host_missing("the GIMP chroot needs root (unshare, mount, chroot)")
    if not GIMP_SH.exists():
        host_missing(f"{GIMP_SH} is missing")
    status = subprocess.run(["bash", str(GIMP_SH), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        detail = status.stdout.strip() or status.stderr.strip()
        host_missing(f"run {GIMP_SH.relative_to(REPO)} first (status: {detail})")
    if not ENGINE_PYTHON.exists():
        host_missing(f"no engine venv at {ENGINE_PYTHON} (created by .ci/run)")
    return GimpHost(status.stdout.strip(), ENGINE_PYTHON)
