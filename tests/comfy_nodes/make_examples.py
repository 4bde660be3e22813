"""Regenerate ``example_workflows/*.json`` (UI format) from ``workflow_specs.py`` and, with ``--previews``, their
preview images (``<name>.jpg``: inputs on the left, result on the right) by running them on a real ComfyUI server.

    $ADAIN_HOST_CACHE/venv/bin/python tests/comfy_nodes/make_examples.py [--previews --model PATH] [--url URL]

Without ``--url`` a temporary server is started from the cached env (``.ci/hosts/comfyui.sh``). Previews made
with a random-weight model show noise: pass the trained model with ``--model``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import comfy_harness as harness  # noqa: E402
import workflow_specs as specs  # noqa: E402

OUT_DIR = harness.REPO / "example_workflows"
PREVIEW_SIZE = (512, 384)


def write_workflows(object_info: dict, out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in specs.WORKFLOWS:
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(specs.render_ui(name, object_info), indent=2) + "\n")
        written.append(path)
    return written


def upload_samples(server: harness.ComfyServer, size: tuple[int, int]) -> dict[str, object]:
    """Upload the procedural sample images under the names the templates use; return them by name."""
    h, w = size
    content = harness.sample_content(h, w)
    images = {
        specs.CONTENT: content,
        specs.CONTENT_MASKED: harness.with_painted_mask(content),
        specs.STYLE_A: harness.sample_style(h, w, "a"),
        specs.STYLE_B: harness.sample_style(h, w, "b"),
    }
    for name, arr in images.items():
        server.upload_image(name, harness.png_bytes(arr))
    frames = [harness.sample_content(h, w, seed=i, shift=3 * i) for i in range(6)]
    server.upload_image(specs.FRAMES, harness.apng_bytes(frames))
    images[specs.FRAMES] = frames
    return images


def _thumb(arr, box):
    from PIL import Image

    if arr.shape[-1] == 4:  # show the painted mask (alpha 0) as a red tint
        rgb = arr[..., :3].astype(float)
        painted = 1.0 - arr[..., 3:4] / 255.0
        arr = (rgb * (1 - 0.5 * painted) + painted * 0.5 * [255, 40, 40]).astype("uint8")
    im = Image.fromarray(arr)
    im.thumbnail(box)
    return im


def _preview(inputs: list, outputs: list, frames: bool = False):
    """Inputs in a column on the left, the result on the right (frames: three inputs over three results)."""
    from PIL import Image

    width, height = PREVIEW_SIZE
    canvas = Image.new("RGB", PREVIEW_SIZE, (24, 24, 24))
    if frames:
        cell = (width // 3 - 8, height // 2 - 8)
        for row, items in enumerate((inputs[:3], outputs[:3])):
            for col, arr in enumerate(items):
                canvas.paste(_thumb(arr, cell), (col * (width // 3) + 4, row * (height // 2) + 4))
        return canvas
    thumb_w, thumb_h = width // 3, height // max(len(inputs), 1)
    for i, arr in enumerate(inputs):
        canvas.paste(_thumb(arr, (thumb_w - 8, thumb_h - 8)), (4, i * thumb_h + 4))
    big = _thumb(outputs[0], (width - thumb_w - 8, height - 8))
    canvas.paste(big, (thumb_w + 4, (height - big.height) // 2))
    return canvas


def write_previews(server: harness.ComfyServer, model_name: str, out_dir: Path = OUT_DIR) -> None:
    object_info = server.get_json("/object_info")
    images = upload_samples(server, (192, 256))
    for name, spec in specs.WORKFLOWS.items():
        ui = json.loads((out_dir / f"{name}.json").read_text())
        prompt = harness.ui_to_api(ui, object_info)
        for node in prompt.values():
            if node["class_type"] == "AdaINModelLoader":
                node["inputs"]["model_name"] = model_name
        entry = server.run(prompt, timeout=600)
        save_id = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
        outputs = server.output_images(entry, save_id)
        inputs: list = []
        for _, cls, _, widgets, _ in spec["nodes"]:
            if cls == "LoadImage":
                img = images[widgets["image"]]
                inputs.extend(img if isinstance(img, list) else [img])
        is_frames = any(isinstance(images[w["image"]], list) for _, c, _, w, _ in spec["nodes"] if c == "LoadImage")
        buf = io.BytesIO()
        _preview(inputs, outputs, frames=is_frames).save(buf, format="JPEG", quality=88)
        (out_dir / f"{name}.jpg").write_bytes(buf.getvalue())
        print("wrote", out_dir / f"{name}.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use a running server (its models/adain must hold --model's file)")
    parser.add_argument("--previews", action="store_true", help="also render <name>.jpg previews")
    parser.add_argument("--model", type=Path, help="model file for the previews (default: a random model)")
    args = parser.parse_args()

    server = None
    tmp = Path(tempfile.mkdtemp(prefix="adain-examples-"))
    try:
        if args.url:
            from urllib.parse import urlparse

            port = urlparse(args.url).port or 8188
            env = harness.ComfyEnv(harness.host_cache() / "comfyui")
            server = harness.ComfyServer(env=env, base=tmp, port=port, extra_paths_dir=tmp / "x")
        else:
            env, reason = harness.find_env()
            if env is None:
                sys.exit(reason)
            models_dir = tmp / "models" / "adain"
            models_dir.mkdir(parents=True)
            if args.model:
                shutil.copyfile(args.model, models_dir / args.model.name)
            else:
                from adain_core.testing import make_random_model

                make_random_model(models_dir / "random.safetensors", seed=0)
            server = harness.start_server(tmp, env)
        for path in write_workflows(server.get_json("/object_info")):
            print("wrote", path)
        if args.previews:
            write_previews(server, args.model.name if args.model else "random.safetensors")
    finally:
        if server is not None and not args.url:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
