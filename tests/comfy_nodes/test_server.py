"""The node pack inside a real ComfyUI 0.3.75 server (CPU): node definitions, the example workflows against
``adain_core`` called directly, websocket progress, interrupts, bad inputs and the model cache.

Tolerance: the server's PNG (SaveImage truncates to uint8) may differ from the direct engine result by at most
2/255 per channel and 0.5/255 on average (same model, device and precision on both sides).
"""

from __future__ import annotations

import json
import re
import time
import uuid

import numpy as np
import pytest
import torch

from adain_core.vocabulary import DEFAULT_MARKS

import comfy_harness as harness
import workflow_specs as specs
from comfy_harness import BROKEN_MODEL, EXTRA_MODEL, TEST_MODEL

pytestmark = pytest.mark.host

MAX_ABS = 2
MAX_MEAN = 0.5


# -- helpers -----------------------------------------------------------------------------------------------------------
def as_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → (1, 3, H, W) float, exactly as ComfyUI's Load Image does."""
    return torch.from_numpy(arr[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def saved(t: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float → what SaveImage writes: uint8 (B, H, W, 3), truncated."""
    return np.clip(255.0 * t.permute(0, 2, 3, 1).numpy(), 0, 255).astype(np.uint8)


def assert_close(got: list[np.ndarray], expected: np.ndarray) -> None:
    got_arr = np.stack(got)
    assert got_arr.shape == expected.shape, (got_arr.shape, expected.shape)
    diff = np.abs(got_arr.astype(np.int16) - expected.astype(np.int16))
    print(f"server vs adain_core: max {diff.max()}/255, mean {diff.mean():.4f}/255")
    assert diff.max() <= MAX_ABS and diff.mean() <= MAX_MEAN, f"max {diff.max()}, mean {diff.mean():.3f}"


def template_prompt(name: str, object_info: dict, model: str = TEST_MODEL, **widget_overrides) -> dict:
    """The committed example workflow in API format, with the test model and per-class widget overrides
    (``{"AdaINStylize": {"alpha": 0.7}}``-style, passed as keyword ``AdaINStylize={...}``)."""
    ui = json.loads((harness.REPO / "example_workflows" / f"{name}.json").read_text())
    prompt = harness.ui_to_api(ui, object_info)
    for node in prompt.values():
        if node["class_type"] == "AdaINModelLoader":
            node["inputs"]["model_name"] = model
        node["inputs"].update(widget_overrides.get(node["class_type"], {}))
    return prompt


def set_image(prompt: dict, old: str, new: str) -> None:
    for node in prompt.values():
        if node["class_type"] == "LoadImage" and node["inputs"]["image"] == old:
            node["inputs"]["image"] = new


def node_of(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


def unique(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:8]}.png"


def upload(comfy, stem: str, arr: np.ndarray) -> str:
    return comfy.upload_image(unique(stem), harness.png_bytes(arr))


def simple_prompt(content: str, style: str, model: str = TEST_MODEL, **stylize) -> dict:
    inputs = {"alpha": 1.0, "color": "palette", "tile": "auto", "temporal": 0.0} | stylize
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": content}},
        "2": {"class_type": "LoadImage", "inputs": {"image": style}},
        "3": {"class_type": "AdaINModelLoader", "inputs": {"model_name": model, "precision": "auto"}},
        "4": {"class_type": "AdaINStyleEncode", "inputs": {"model": ["3", 0], "style_image": ["2", 0],
                                                           "style_size": 64}},
        "5": {"class_type": "AdaINStylize", "inputs": {"image": ["1", 0], "model": ["3", 0], "style": ["4", 0],
                                                       **inputs}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "adain_test/simple"}},
    }


def load_lines(comfy, model: str) -> list[str]:
    return [ln for ln in comfy.log_text().splitlines() if re.search(rf"AdaIN: loaded model {re.escape(model)} ", ln)]


# -- node definitions --------------------------------------------------------------------------------------------------
EXPECTED_INPUTS = {
    "AdaINModelLoader": (["model_name", "precision"], []),
    "AdaINStyleEncode": (["model", "style_image", "style_size"], ["backdrop"]),
    "AdaINStyleMix": (["style_1", "weight_1", "style_2", "weight_2"], ["style_3", "weight_3", "style_4", "weight_4"]),
    "AdaINSaveStyle": (["style", "filename_prefix", "destination"], []),
    "AdaINLoadStyle": (["style_name"], []),
    "AdaINStylize": (["image", "model", "style", "alpha", "color", "tile", "temporal"],
                     ["scale", "marks", "mask", "style_unmasked"]),
}
EXPECTED_OUTPUTS = {
    "AdaINModelLoader": ["ADAIN_MODEL"], "AdaINStyleEncode": ["ADAIN_STYLE"], "AdaINStyleMix": ["ADAIN_STYLE"],
    "AdaINSaveStyle": ["STRING"], "AdaINLoadStyle": ["ADAIN_STYLE"], "AdaINStylize": ["IMAGE"],
}


def test_pack_imported_without_errors(comfy):
    log = comfy.log_text()
    assert f"custom_nodes/{harness.PACK_NAME}" in log  # listed in ComfyUI's import times
    assert not re.search(rf"Cannot import .*{harness.PACK_NAME}", log), comfy.log_tail()


@pytest.mark.parametrize("node_id", harness.NODE_IDS)
def test_node_in_object_info(object_info, node_id):
    assert node_id in object_info, f"{node_id} missing from /object_info (import failed? see the server log)"
    info = object_info[node_id]
    required, optional = EXPECTED_INPUTS[node_id]
    assert info["input_order"]["required"] == required
    assert info["input_order"].get("optional", []) == optional
    assert info["category"] == "style_transfer/AdaIN"
    assert info["description"]
    assert info["output"] == EXPECTED_OUTPUTS[node_id]
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_model_choices(object_info):
    options = object_info["AdaINModelLoader"]["input"]["required"]["model_name"][1]["options"]
    assert options[0] == "default (bundled)"
    assert TEST_MODEL in options and BROKEN_MODEL in options
    assert EXTRA_MODEL in options, "a model in an extra_model_paths.yaml 'adain' folder is not listed"
    assert not any(o.endswith(".adainstyle.safetensors") for o in options)


def test_stylize_combos(object_info):
    req = object_info["AdaINStylize"]["input"]["required"]
    assert req["color"][1]["options"] == ["palette", "style", "preserve", "luminance"]
    assert req["color"][1]["default"] == "palette"
    assert req["tile"][1]["options"][:2] == ["auto", "off"]
    assert req["alpha"][1]["min"] == 0.0 and req["alpha"][1]["max"] == 1.0


# -- templates ---------------------------------------------------------------------------------------------------------
def test_example_workflows_match_specs(object_info):
    """The committed templates are what workflow_specs renders against the live node definitions
    (regenerate with tests/comfy_nodes/make_examples.py)."""
    for name in specs.WORKFLOWS:
        committed = json.loads((harness.REPO / "example_workflows" / f"{name}.json").read_text())
        assert committed == specs.render_ui(name, object_info), f"example_workflows/{name}.json is stale"


def test_templates_served(comfy):
    templates = comfy.get_json("/workflow_templates")
    assert sorted(templates.get(harness.PACK_NAME, [])) == sorted(specs.WORKFLOWS)
    for name in specs.WORKFLOWS:
        for ext in ("json", "jpg"):
            status, body = comfy._request("GET", f"/api/workflow_templates/{harness.PACK_NAME}/{name}.{ext}")
            assert status == 200 and body, f"{name}.{ext} not served"


# -- the example workflows vs adain_core ---------------------------------------------------------------------------------
def test_basic_stylize_workflow(comfy, object_info, engine):
    content, style = harness.sample_content(40, 48, seed=3), harness.sample_style(56, 40, "a")
    c_name, s_name = upload(comfy, "content", content), upload(comfy, "style", style)
    prompt = template_prompt("adain_basic_stylize", object_info, AdaINStyleEncode={"style_size": 48},
                             AdaINStylize={"alpha": 0.8})
    set_image(prompt, specs.CONTENT, c_name)
    set_image(prompt, specs.STYLE_A, s_name)
    entry = comfy.run(prompt)
    got = comfy.output_images(entry, node_of(prompt, "SaveImage"))

    card = engine.encode_style(as_tensor(style), size=48)
    expected = engine.stylize(as_tensor(content), card, alpha=0.8, color="palette", tile="auto")
    assert got[0].shape == (40, 48, 3)  # exactly the content's size; the 56x40 style is never stretched onto it
    assert_close(got, saved(expected))


def test_working_resolution(comfy, object_info, engine):
    """scale 0.5 and 0 (= auto, here full size: the image is small) give the engine's results at the input's size."""
    assert object_info["AdaINStylize"]["input"]["optional"]["scale"][1]["default"] == 1.0
    content, style = harness.sample_content(40, 48, seed=5), harness.sample_style(56, 40, "a")
    c_name, s_name = upload(comfy, "content", content), upload(comfy, "style", style)
    card = engine.encode_style(as_tensor(style), size=48)
    for scale, engine_scale in ((0.5, 0.5), (0.0, "auto")):
        prompt = template_prompt("adain_basic_stylize", object_info, AdaINStyleEncode={"style_size": 48},
                                 AdaINStylize={"scale": scale})
        set_image(prompt, specs.CONTENT, c_name)
        set_image(prompt, specs.STYLE_A, s_name)
        got = comfy.output_images(comfy.run(prompt), node_of(prompt, "SaveImage"))
        assert got[0].shape == (40, 48, 3)
        assert_close(got, saved(engine.stylize(as_tensor(content), card, scale=engine_scale)))


def test_marks(comfy, object_info, engine):
    """The marks input (optional, default the engine's) gives the engine's result with the painting's marks."""
    assert object_info["AdaINStylize"]["input"]["optional"]["marks"][1]["default"] == DEFAULT_MARKS
    content, style = harness.sample_content(40, 48, seed=5), harness.sample_style(56, 40, "a")
    c_name, s_name = upload(comfy, "content", content), upload(comfy, "style", style)
    card = engine.encode_style(as_tensor(style), size=48)
    prompt = template_prompt("adain_basic_stylize", object_info, AdaINStyleEncode={"style_size": 48},
                             AdaINStylize={"marks": 1.0})
    set_image(prompt, specs.CONTENT, c_name)
    set_image(prompt, specs.STYLE_A, s_name)
    got = comfy.output_images(comfy.run(prompt), node_of(prompt, "SaveImage"))
    expected = engine.stylize(as_tensor(content), card, marks=1.0)
    assert_close(got, saved(expected))
    assert float((expected - engine.stylize(as_tensor(content), card)).abs().max()) > 0.01


def test_two_style_mix_workflow_and_saved_card(comfy, object_info, engine):
    import adain_core

    content = harness.sample_content(32, 40, seed=4)
    style_a, style_b = harness.sample_style(40, 40, "a"), harness.sample_style(48, 32, "b")
    names = [upload(comfy, n, a) for n, a in (("content", content), ("style_a", style_a), ("style_b", style_b))]
    prefix = f"adain_test/mix_{uuid.uuid4().hex[:6]}"
    prompt = template_prompt("adain_two_style_mix", object_info, AdaINStyleEncode={"style_size": 40},
                             AdaINStyleMix={"weight_1": 0.3, "weight_2": 0.9},
                             AdaINSaveStyle={"filename_prefix": prefix})
    for old, new in zip((specs.CONTENT, specs.STYLE_A, specs.STYLE_B), names):
        set_image(prompt, old, new)
    entry = comfy.run(prompt)
    got = comfy.output_images(entry, node_of(prompt, "SaveImage"))

    cards = [engine.encode_style(as_tensor(s), size=40) for s in (style_a, style_b)]
    mixed = adain_core.mix(cards, [0.3, 0.9])
    assert_close(got, saved(engine.stylize(as_tensor(content), mixed, alpha=1.0)))

    saved_ui = entry["outputs"][node_of(prompt, "AdaINSaveStyle")]["adain_styles"][0]
    card_path = comfy.base / "models" / "adain" / "styles" / saved_ui["subfolder"] / saved_ui["filename"]
    assert card_path.name.endswith("_00001_.adainstyle.safetensors"), card_path
    card = adain_core.StyleCard.load(card_path, encoder_id=engine.encoder_id)
    torch.testing.assert_close(card.mean, mixed.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(card.std, mixed.std, rtol=1e-5, atol=1e-5)


def test_masked_two_style_workflow(comfy, object_info, engine):
    rgb = harness.sample_content(40, 56, seed=5)
    rgba = harness.with_painted_mask(rgb)
    style_a, style_b = harness.sample_style(40, 40, "a"), harness.sample_style(40, 40, "b")
    names = [upload(comfy, n, a) for n, a in (("masked", rgba), ("style_a", style_a), ("style_b", style_b))]
    prompt = template_prompt("adain_masked_two_style", object_info, AdaINStyleEncode={"style_size": 40})
    for old, new in zip((specs.CONTENT_MASKED, specs.STYLE_A, specs.STYLE_B), names):
        set_image(prompt, old, new)
    entry = comfy.run(prompt)
    got = comfy.output_images(entry, node_of(prompt, "SaveImage"))

    mask = 1.0 - torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0)[None, None]  # Load Image: 1 - alpha
    card_a, card_b = (engine.encode_style(as_tensor(s), size=40) for s in (style_a, style_b))
    expected = engine.stylize(as_tensor(rgb), [(card_a, mask), (card_b, 1.0 - mask)], alpha=1.0)
    assert_close(got, saved(expected))
    # and the mask matters: stylising everything with style A differs clearly
    only_a = saved(engine.stylize(as_tensor(rgb), card_a, alpha=1.0))
    assert np.abs(np.stack(got).astype(int) - only_a.astype(int)).mean() > 2


def test_frames_batch_workflow(comfy, object_info, engine):
    frames = [harness.sample_content(32, 40, seed=i, shift=2 * i) for i in range(4)]
    style = harness.sample_style(40, 40, "a")
    f_name = comfy.upload_image(unique("frames"), harness.apng_bytes(frames))
    s_name = upload(comfy, "style", style)
    prompt = template_prompt("adain_frames_batch", object_info, AdaINStyleEncode={"style_size": 40},
                             AdaINStylize={"temporal": 0.6},
                             SaveAnimatedPNG={"filename_prefix": f"adain_test/anim_{uuid.uuid4().hex[:6]}"})
    set_image(prompt, specs.FRAMES, f_name)
    set_image(prompt, specs.STYLE_A, s_name)
    entry = comfy.run(prompt)
    got = comfy.output_images(entry, node_of(prompt, "SaveImage"))
    assert len(got) == 4

    card = engine.encode_style(as_tensor(style), size=40)
    expected = torch.cat(list(engine.stylize_frames((as_tensor(f) for f in frames), card, temporal=0.6)))
    assert_close(got, saved(expected))
    # temporal smoothing is really on: frame 3 differs from stylising it alone
    alone = saved(engine.stylize(as_tensor(frames[3]), card))
    assert np.abs(got[3].astype(int) - alone[0].astype(int)).max() > MAX_ABS
    assert entry["outputs"][node_of(prompt, "SaveAnimatedPNG")]["images"]


def test_load_style_card_node(comfy, engine, tmp_path):
    """A card saved to the output folder is listed and loaded by Load AdaIN Style."""
    import adain_core

    style = harness.sample_style(32, 32, "b")
    card = engine.encode_style(as_tensor(style), size=32, name="from_test")
    name = f"adain_test_{uuid.uuid4().hex[:6]}.adainstyle.safetensors"
    card.save(comfy.base / "output" / name)
    content = harness.sample_content(24, 32, seed=7)
    c_name = upload(comfy, "content", content)
    options = comfy.get_json("/object_info/AdaINLoadStyle")["AdaINLoadStyle"]["input"]["required"]["style_name"]
    assert name in options[1]["options"]
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": c_name}},
        "2": {"class_type": "AdaINModelLoader", "inputs": {"model_name": TEST_MODEL, "precision": "auto"}},
        "3": {"class_type": "AdaINLoadStyle", "inputs": {"style_name": name}},
        "4": {"class_type": "AdaINStylize", "inputs": {"image": ["1", 0], "model": ["2", 0], "style": ["3", 0],
                                                       "alpha": 0.5, "color": "luminance", "tile": "off",
                                                       "temporal": 0.0}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "adain_test/card"}},
    }
    got = comfy.output_images(comfy.run(prompt), "5")
    loaded = adain_core.StyleCard.load(comfy.base / "output" / name)
    assert_close(got, saved(engine.stylize(as_tensor(content), loaded, alpha=0.5, color="luminance", tile="off")))


@pytest.mark.parametrize("temporal", [0.0, 0.5])
def test_per_frame_masks(comfy, engine, temporal):
    """An animated RGBA image gives one mask per frame; each frame gets its own mask, with or without smoothing."""
    frames = [harness.with_painted_mask(harness.sample_content(32, 40, seed=30 + i)) for i in range(2)]
    frames[1][..., 3] = 255 - frames[1][..., 3]  # frame 2: the opposite region
    f_name = comfy.upload_image(unique("rgba_frames"), harness.apng_bytes(frames))
    style_a, style_b = harness.sample_style(32, 32, "a"), harness.sample_style(32, 32, "b")
    prompt = simple_prompt(f_name, upload(comfy, "style_a", style_a))
    prompt["9"] = {"class_type": "LoadImage", "inputs": {"image": upload(comfy, "style_b", style_b)}}
    prompt["10"] = {"class_type": "AdaINStyleEncode", "inputs": {"model": ["3", 0], "style_image": ["9", 0],
                                                                 "style_size": 64}}
    prompt["5"]["inputs"].update(mask=["1", 1], style_unmasked=["10", 0], temporal=temporal)
    got = comfy.output_images(comfy.run(prompt), "6")

    card_a, card_b = (engine.encode_style(as_tensor(s), size=64) for s in (style_a, style_b))
    expected = []
    state = None
    for frame in frames:
        mask = 1.0 - torch.from_numpy(frame[..., 3].astype(np.float32) / 255.0)[None, None]
        out, state = engine.stylize_frame(as_tensor(frame), [(card_a, mask), (card_b, 1.0 - mask)], state=state,
                                          temporal=temporal)
        expected.append(out)
    assert_close(got, saved(torch.cat(expected)))


def test_style_batch_is_averaged_into_one_card(comfy, engine):
    import adain_core

    styles = [harness.sample_style(32, 32, "a"), harness.sample_style(32, 32, "b")]
    content = harness.sample_content(24, 32, seed=50)
    prompt = simple_prompt(upload(comfy, "content", content),
                           comfy.upload_image(unique("style_batch"), harness.apng_bytes(styles)))
    got = comfy.output_images(comfy.run(prompt), "6")
    mixed = adain_core.mix([engine.encode_style(as_tensor(s), size=64) for s in styles], [1.0, 1.0])
    assert_close(got, saved(engine.stylize(as_tensor(content), mixed)))


@pytest.mark.parametrize("backdrop", [None, "keep"])
def test_cut_out_style_backdrop(comfy, engine, backdrop):
    """A figure on white: without the optional input the surround is left out of the card (as the engine's default),
    with ``keep`` it is used; each output matches adain_core's."""
    style = np.full((48, 48, 3), 255, np.uint8)
    style[12:36, 12:36] = harness.sample_style(24, 24, "b")
    content = harness.sample_content(24, 32, seed=51)
    prompt = simple_prompt(upload(comfy, "content", content), upload(comfy, "cut_out", style))
    if backdrop is not None:
        prompt["4"]["inputs"]["backdrop"] = backdrop
    got = comfy.output_images(comfy.run(prompt), "6")
    card = engine.encode_style(as_tensor(style), size=64, backdrop=backdrop or "ignore")
    assert (card.painted[0] is None) == (backdrop == "keep")
    assert_close(got, saved(engine.stylize(as_tensor(content), card)))


def test_default_model_choice(comfy):
    """'default (bundled)' runs with the engine's cache empty: the decoder and the encoder ship in the package."""
    content = upload(comfy, "content", harness.sample_content(24, 24, seed=40))
    style = upload(comfy, "style", harness.sample_style(24, 24))
    got = comfy.output_images(comfy.run(simple_prompt(content, style, model="default (bundled)")), "6")
    assert got[0].shape == (24, 24, 3)
    home = comfy.base / "adain_home"
    assert not home.exists() or not any(home.rglob("*.safetensors"))


# -- progress and interrupt ----------------------------------------------------------------------------------------------
def test_progress_messages_on_websocket(comfy):
    frames = [harness.sample_content(96, 96, seed=i) for i in range(3)]
    f_name = comfy.upload_image(unique("progress"), harness.apng_bytes(frames))
    s_name = upload(comfy, "style", harness.sample_style(32, 32, "a"))
    prompt = simple_prompt(f_name, s_name, tile="64")
    prompt_id, messages = comfy.run_with_ws(prompt)
    progress = [m["data"] for m in messages if m["type"] == "progress" and m["data"].get("node") == "5"]
    assert len(progress) >= 6, progress  # tiles of 3 frames
    values = [p["value"] / p["max"] for p in progress]
    assert values == sorted(values) and values[-1] == 1.0
    # The style encode (the first slow step of a new style) shows progress too.
    assert any(m["type"] == "progress" and m["data"].get("node") == "4" for m in messages), messages
    assert all(p["prompt_id"] == prompt_id for p in progress)
    assert any(m["type"] == "execution_success" for m in messages)


def test_interrupt_long_batch(comfy):
    content = upload(comfy, "long", harness.sample_content(64, 64, seed=11))
    style = upload(comfy, "style", harness.sample_style(32, 32, "a"))
    prompt = simple_prompt(content, style)
    prompt["7"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 400}}
    prompt["5"]["inputs"]["image"] = ["7", 0]
    sent: dict[str, float] = {}

    def on_message(server, prompt_id, msg):
        if msg["type"] == "progress" and msg["data"].get("node") == "5" and "at" not in sent:
            sent["at"] = time.monotonic()
            status, _ = server.post_json("/interrupt", {})
            assert status == 200

    start = time.monotonic()
    prompt_id, messages = comfy.run_with_ws(prompt, on_message=on_message, timeout=300)
    assert "at" in sent, "no progress message arrived before the end"
    kinds = [m["type"] for m in messages]
    assert "execution_interrupted" in kinds, kinds
    assert "execution_success" not in kinds
    progress = [m["data"] for m in messages if m["type"] == "progress" and m["data"].get("node") == "5"]
    assert progress[-1]["value"] < progress[-1]["max"] // 4, "the batch ran on long after the interrupt"
    assert time.monotonic() - sent["at"] < 30
    entry = comfy.wait(prompt_id)
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    assert comfy.healthy()
    # and the next prompt runs normally
    comfy.run(simple_prompt(content, style, alpha=0.42))
    print(f"interrupt: stopped {time.monotonic() - sent['at']:.2f} s after the request "
          f"({time.monotonic() - start:.1f} s total)")


# -- bad inputs --------------------------------------------------------------------------------------------------------
def test_missing_model_file_is_a_node_error(comfy):
    content = upload(comfy, "content", harness.sample_content(24, 24))
    style = upload(comfy, "style", harness.sample_style(24, 24))
    with pytest.raises(harness.PromptRejected) as info:
        comfy.queue(simple_prompt(content, style, model="no_such_model.safetensors"))
    errors = info.value.body["node_errors"]
    assert list(errors) == ["3"], errors
    (error,) = errors["3"]["errors"]
    assert error["details"].startswith("model_name") and "no_such_model.safetensors" in error["details"]
    assert comfy.healthy()


def test_broken_model_file_is_an_execution_error(comfy):
    content = upload(comfy, "content", harness.sample_content(24, 24))
    style = upload(comfy, "style", harness.sample_style(24, 24))
    entry = comfy.wait(comfy.queue(simple_prompt(content, style, model=BROKEN_MODEL)))
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "3" and error["exception_type"].endswith("ModelError")
    assert BROKEN_MODEL in error["exception_message"] and "\n" not in error["exception_message"].strip()
    assert comfy.healthy()
    comfy.run(simple_prompt(content, style, alpha=0.31))


def test_wrong_size_mask_is_a_node_error(comfy):
    content = upload(comfy, "content", harness.sample_content(40, 48))
    style = upload(comfy, "style", harness.sample_style(24, 24))
    prompt = simple_prompt(content, style)
    prompt["8"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}}
    prompt["5"]["inputs"]["mask"] = ["8", 0]
    entry = comfy.wait(comfy.queue(prompt))
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "5"
    assert "mask is 32x32" in error["exception_message"] and "image is 48x40" in error["exception_message"]
    assert comfy.healthy()


# -- the model cache ---------------------------------------------------------------------------------------------------
def test_model_loaded_once_across_prompts(comfy):
    content = upload(comfy, "content", harness.sample_content(24, 32, seed=21))
    style = upload(comfy, "style", harness.sample_style(24, 24))
    comfy.run(simple_prompt(content, style, alpha=0.61))
    # A prompt without that loader makes ComfyUI drop the loader's cached output ...
    comfy.run(simple_prompt(content, style, model=EXTRA_MODEL, alpha=0.62))
    # ... so here the loader node really executes again, and must take the model from the pack's cache.
    entry = comfy.run(simple_prompt(content, style, alpha=0.63))
    cached = next(m[1]["nodes"] for m in entry["status"]["messages"] if m[0] == "execution_cached")
    assert "3" not in cached, "the loader did not execute; the test proves nothing"
    lines = load_lines(comfy, TEST_MODEL)
    assert len(lines) == 1, lines
    assert len(load_lines(comfy, EXTRA_MODEL)) == 1
