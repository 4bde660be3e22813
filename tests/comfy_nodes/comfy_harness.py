"""Test harness for the ComfyUI nodes: find the cached server env (built by ``.ci/hosts/comfyui.sh``), start a real
ComfyUI server on a free port with this repository as a custom node, and talk to it over HTTP and the websocket.

Used by ``conftest.py`` and by ``make_examples.py`` (which regenerates ``example_workflows/``).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).resolve().parent / "stubs"
PACK_NAME = "adain-style-transfer"
TEST_MODEL = "test_random.safetensors"  # names the test server's models/adain/ files get
EXTRA_MODEL = "test_extra.safetensors"  # lives in an extra_model_paths.yaml folder
BROKEN_MODEL = "test_broken.safetensors"  # not a safetensors file
NODE_IDS = ["AdaINModelLoader", "AdaINStyleEncode", "AdaINStyleMix", "AdaINSaveStyle", "AdaINLoadStyle", "AdaINStylize"]


def host_cache() -> Path:
    return Path(os.environ.get("ADAIN_HOST_CACHE") or Path.home() / ".cache" / "adain-hosts").expanduser()


@dataclass
class ComfyEnv:
    root: Path  # $ADAIN_HOST_CACHE/comfyui

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def main(self) -> Path:
        return self.root / "comfyui" / "main.py"


def find_env() -> tuple[ComfyEnv | None, str]:
    """The cached ComfyUI env, or None and the reason it is not usable."""
    root = host_cache() / "comfyui"
    env = ComfyEnv(root)
    if not (root / ".ready").is_file():
        return None, f"ComfyUI server env not built: {root}/.ready missing (run .ci/hosts/comfyui.sh)"
    if not env.python.is_file() or not env.main.is_file():
        return None, f"ComfyUI server env at {root} is incomplete (venv/bin/python or comfyui/main.py missing)"
    return env, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerError(RuntimeError):
    pass


class PromptRejected(ServerError):
    """POST /prompt answered 400 (validation failed); ``body`` holds ``error`` and ``node_errors``."""

    def __init__(self, body: dict):
        super().__init__(json.dumps(body)[:2000])
        self.body = body


@dataclass
class ComfyServer:
    """A running ComfyUI server process and a small client for it."""

    env: ComfyEnv
    base: Path
    port: int
    extra_paths_dir: Path
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.base / "server.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        (self.base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        link = self.base / "custom_nodes" / PACK_NAME
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        (self.base / "models" / "adain" / "styles").mkdir(parents=True, exist_ok=True)
        self.extra_paths_dir.mkdir(parents=True, exist_ok=True)
        extra_yaml = self.base / "extra_model_paths.yaml"
        extra_yaml.write_text(f"adain_test_extra:\n  base_path: {self.extra_paths_dir}\n  adain: models/\n")
        (self.extra_paths_dir / "models").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PYTHONPATH"] = str(STUBS)
        env["ADAIN_HOME"] = str(self.base / "adain_home")  # the engine's cache: keep the user's out of tests
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            str(self.env.python), str(self.env.main), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch", "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
            "--extra-model-paths-config", str(extra_yaml),
        ]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, cwd=self.base, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise ServerError(f"ComfyUI did not answer /system_stats within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # -- HTTP ------------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None,
                 timeout: float = 30) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get_json(self, path: str, timeout: float = 30):
        status, body = self._request("GET", path, timeout=timeout)
        if status != 200:
            raise ServerError(f"GET {path} -> {status}: {body[:500]!r}")
        return json.loads(body)

    def post_json(self, path: str, payload: dict) -> tuple[int, dict | None]:
        status, body = self._request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        try:
            return status, json.loads(body) if body else None
        except json.JSONDecodeError:
            return status, {"raw": body.decode(errors="replace")}

    def upload_image(self, name: str, png: bytes) -> str:
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n"
        ).encode() + png + f"\r\n--{boundary}--\r\n".encode()
        status, resp = self._request("POST", "/upload/image", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise ServerError(f"upload of {name} failed: {status} {resp[:300]!r}")
        return json.loads(resp)["name"]

    def queue(self, prompt: dict) -> str:
        status, body = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if status == 400:
            raise PromptRejected(body or {})
        if status != 200:
            raise ServerError(f"POST /prompt -> {status}: {body}")
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 180.0) -> dict:
        """Poll ``/history/<id>`` until the prompt finished (successfully or not); return its history entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = self.get_json(f"/history/{prompt_id}")
            entry = hist.get(prompt_id)
            if entry and "status" in entry:  # history is written once the prompt has finished, however it ended
                return entry
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"server died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.2)
        raise ServerError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 180.0) -> dict:
        """Queue, wait, and require success; return the history entry."""
        entry = self.wait(self.queue(prompt), timeout)
        if entry["status"].get("status_str") != "success":
            raise ServerError(f"prompt failed: {json.dumps(entry['status'])[:3000]}\n{self.log_tail(30)}")
        return entry

    def view(self, item: dict) -> bytes:
        from urllib.parse import urlencode

        query = urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                           "type": item.get("type", "output")})
        status, body = self._request("GET", f"/view?{query}")
        if status != 200:
            raise ServerError(f"/view {query} -> {status}")
        return body

    def output_images(self, entry: dict, node_id: str) -> list[np.ndarray]:
        """Images a SaveImage-like node wrote, as (H, W, C) uint8 arrays, in batch order."""
        from PIL import Image

        items = entry["outputs"][node_id]["images"]
        return [np.asarray(Image.open(io.BytesIO(self.view(it)))) for it in items]

    def healthy(self) -> bool:
        try:
            return "system" in self.get_json("/system_stats", timeout=5)
        except (OSError, ServerError):
            return False

    # -- websocket -------------------------------------------------------------------------------------------------
    def run_with_ws(self, prompt: dict, on_message: Callable[["ComfyServer", str, dict], None] | None = None,
                    timeout: float = 180.0) -> tuple[str, list[dict]]:
        """Queue ``prompt`` while listening on the websocket; return (prompt_id, JSON messages) once the prompt is
        done (``executing`` with node None, an error or an interrupt). ``on_message(server, prompt_id, msg)`` is
        called for each message as it arrives (from the event loop's thread; blocking calls are fine for tests)."""
        import aiohttp

        async def go() -> tuple[str, list[dict]]:
            messages: list[dict] = []
            ws_url = f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}"
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(ws_url, heartbeat=30) as ws:
                    prompt_id = await asyncio.to_thread(self.queue, prompt)
                    deadline = time.monotonic() + timeout
                    while time.monotonic() < deadline:
                        try:
                            msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.1))
                        except asyncio.TimeoutError:
                            break
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                                break
                            continue  # binary preview frames
                        data = json.loads(msg.data)
                        messages.append(data)
                        if on_message is not None:
                            await asyncio.to_thread(on_message, self, prompt_id, data)
                        kind, body = data.get("type"), data.get("data", {})
                        if body.get("prompt_id") not in (None, prompt_id):
                            continue
                        if kind in ("execution_error", "execution_interrupted"):
                            return prompt_id, messages
                        if kind == "executing" and body.get("node") is None and body.get("prompt_id") == prompt_id:
                            return prompt_id, messages
                    raise ServerError(f"no end of prompt {prompt_id} on the websocket within {timeout:.0f} s")

        return asyncio.run(go())


def start_server(base: Path, env: ComfyEnv, timeout: float = 180.0) -> ComfyServer:
    server = ComfyServer(env=env, base=base, port=free_port(), extra_paths_dir=base / "extra_models_root")
    try:
        server.start(timeout)
    except BaseException:
        server.stop()
        raise
    return server


# -- workflows ---------------------------------------------------------------------------------------------------------
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"Note", "MarkdownNote"}


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow (what ComfyUI saves and shows as a template) to the API format of ``/prompt``.

    Widget values are matched to widget inputs in the node's declared input order (``input_order``); values the
    frontend appends after them (the upload button of Load Image) are ignored. Muted/bypassed nodes and notes are
    skipped.
    """
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        if node["type"] in NOTE_TYPES or node.get("mode", 0) in (2, 4):
            continue
        info = object_info[node["type"]]
        order = info.get("input_order", {})
        names = list(order.get("required", [])) + list(order.get("optional", []))
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        widget_names = [n for n in names if _is_widget(specs[n])]
        inputs: dict[str, object] = dict(zip(widget_names, node.get("widgets_values", [])))
        for slot in node.get("inputs", []):
            link_id = slot.get("link")
            if link_id is not None:
                _, from_node, from_slot, *_ = links[link_id]
                inputs[slot["name"]] = [str(from_node), from_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def apng_bytes(frames: list[np.ndarray]) -> bytes:
    """An animated PNG (lossless; ComfyUI's Load Image turns its frames into an IMAGE batch)."""
    from PIL import Image

    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buf, format="PNG", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


def copy_model(src: Path, dest_dir: Path, name: str) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    shutil.copyfile(src, dest)
    return dest


if __name__ == "__main__":  # manual use: python tests/comfy_nodes/comfy_harness.py → start a server and wait
    env, reason = find_env()
    if env is None:
        sys.exit(reason)
    import tempfile

    srv = start_server(Path(tempfile.mkdtemp(prefix="adain-comfy-")), env)
    print(f"ComfyUI at {srv.url}, base {srv.base}; Ctrl-C stops it")
    try:
        srv.process.wait()
    except KeyboardInterrupt:
        srv.stop()


# -- sample images (deterministic, procedural: nothing to license) -------------------------------------------------
def sample_content(height: int, width: int, seed: int = 0, shift: int = 0) -> np.ndarray:
    """A 'scene': sky-to-ground gradient, a sun and two blocks; ``shift`` moves the sun (for frames). uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = y / max(height - 1, 1)
    img = np.stack([0.35 + 0.4 * t, 0.55 + 0.2 * t, 0.9 - 0.6 * t], axis=-1)
    cx, cy, r = width * 0.3 + shift, height * 0.3, min(height, width) * 0.15
    sun = ((x - cx) ** 2 + (y - cy) ** 2) < r**2
    img[sun] = [0.98, 0.85, 0.3]
    img[int(height * 0.55):, int(width * 0.55):int(width * 0.8)] = [0.55, 0.25, 0.2]
    img[int(height * 0.7):, int(width * 0.15):int(width * 0.4)] = [0.2, 0.45, 0.25]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def sample_style(height: int, width: int, kind: str = "a", seed: int = 1) -> np.ndarray:
    """Style A: warm diagonal brush stripes; style B: cool blotches. uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "a":
        phase = (x + y) / 6.0 + rng.normal(0, 0.4, (height, width))
        img = np.stack([0.6 + 0.4 * np.sin(phase), 0.35 + 0.3 * np.sin(phase * 0.7 + 1), 0.15 + 0.1 * np.cos(phase)],
                       axis=-1)
    else:
        n = 12
        px, py = rng.random(n) * width, rng.random(n) * height
        colours = rng.random((n, 3)) * [0.3, 0.6, 0.5] + [0.0, 0.3, 0.5]
        d = (x[..., None] - px) ** 2 + (y[..., None] - py) ** 2
        img = colours[np.argmin(d, axis=-1)] + rng.normal(0, 0.05, (height, width, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def with_painted_mask(rgb: np.ndarray) -> np.ndarray:
    """RGBA version of ``rgb`` whose alpha is 0 in a soft ellipse: what ComfyUI's mask editor saves when one paints
    there (Load Image then outputs MASK = 1 - alpha, i.e. 1 where painted)."""
    height, width = rgb.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    d = ((x - width * 0.62) / (width * 0.3)) ** 2 + ((y - height * 0.55) / (height * 0.35)) ** 2
    alpha = np.clip((d - 0.8) / 0.4, 0, 1)
    return np.concatenate([rgb, (alpha[..., None] * 255 + 0.5).astype(np.uint8)], axis=-1)
