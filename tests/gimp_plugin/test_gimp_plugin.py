"""The GIMP 3 filter in real GIMP 3.0.4 (headless): registration, results equal to the engine, selections, offsets,
alpha, errors that leave the image untouched. One GIMP session runs every scenario (GIMP starts in ~8 s)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_core.vocabulary import DEFAULT_MARKS

pytestmark = pytest.mark.host

PROC_ARGS = ["style-file", "second-style-file", "mix", "alpha", "color-mode", "style-size", "use-selection", "output",
             "working-resolution", "backdrop", "marks"]
#: GIMP stores the result as 8-bit; the engine runs on the same CPU code in both cases, so the only differences are
#: float summation order (thread count) flipping a rounding: at most 2 levels anywhere, under 0.1 level on average.
MAX_LEVELS, MEAN_LEVELS = 2, 0.1
STYLE_SIZE = 64


def _content(width: int, height: int, seed: int) -> np.ndarray:
    """RGBA uint8 with smooth structure (so the result is not just noise) and a varying alpha."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                    (xx + yy) * 127 // max(width + height - 2, 1)], axis=2)
    rgb = np.clip(rgb + rng.integers(-20, 21, rgb.shape), 0, 255)
    alpha = np.clip(64 + xx * 191 // max(width - 1, 1), 0, 255)[..., None]
    return np.concatenate([rgb, alpha], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def session(gimp_host, tmp_path_factory):
    """Run all scenarios in one GIMP session; returns (results, work dir, inputs)."""
    from adain_core.testing import make_random_model

    work = tmp_path_factory.mktemp("gimp")
    model = make_random_model(work / "model.safetensors", seed=0)
    rng = np.random.default_rng(1)
    for name, seed in (("style_a", 2), ("style_b", 3)):
        Image.fromarray(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) // 2 + _content(96, 72, seed)[..., :3] // 2
                        ).save(work / f"{name}.png")
    cut_out = np.full((72, 96, 3), 255, np.uint8)  # style_a's middle on a white surround
    cut_out[18:54, 24:72] = np.asarray(Image.open(work / "style_a.png"))[18:54, 24:72]
    Image.fromarray(cut_out).save(work / "cut_out.png")
    inputs = {"main": _content(48, 40, 4), "big": _content(56, 44, 5), "large": _content(512, 384, 6)}
    for name, pixels in inputs.items():
        (work / f"{name}.raw").write_bytes(pixels.tobytes())
    engine_ok = {"python": str(gimp_host.engine_python)}
    style = {"style-file": str(work / "style_a.png"), "style-size": STYLE_SIZE}
    main = {"content": "main.raw", "size": [48, 40]}
    scenarios = [
        {"id": "registration", "kind": "registration"},
        # The engine is not reachable: these run first, while no worker exists yet.
        {"id": "no-python", "kind": "filter", "config": {"python": "/nonexistent/bin/python3"},
         "image": {**main, "canvas": [48, 40], "offsets": [0, 0]}, "args": style},
        {"id": "no-engine", "kind": "filter", "config": {"python": "/usr/bin/python3"},
         "image": {**main, "canvas": [48, 40], "offsets": [0, 0]}, "args": style},
        {"id": "new-layer", "kind": "filter", "config": engine_ok,
         "image": {**main, "canvas": [80, 60], "offsets": [10, 7]}, "args": style},
        {"id": "larger-than-canvas", "kind": "filter",
         "image": {"content": "big.raw", "size": [56, 44], "canvas": [40, 32], "offsets": [-6, -5]}, "args": style},
        {"id": "selection-replace", "kind": "filter",
         "image": {**main, "canvas": [48, 40], "offsets": [0, 0], "selection": [8, 6, 24, 20]},
         "args": {**style, "output": "replace"}},
        {"id": "selection-new-layer", "kind": "filter",
         "image": {**main, "canvas": [48, 40], "offsets": [0, 0], "selection": [8, 6, 24, 20]}, "args": style},
        {"id": "ignore-selection-replace", "kind": "filter",
         "image": {**main, "canvas": [48, 40], "offsets": [0, 0], "selection": [8, 6, 24, 20]},
         "args": {**style, "output": "replace", "use-selection": False}},
        {"id": "mix", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": {**style, "second-style-file": str(work / "style_b.png"), "mix": 0.3, "color-mode": "preserve",
                  "alpha": 0.7}},
        # Cancel on GIMP's progress bar kills the plug-in; the worker must drop the job and keep serving.
        {"id": "killed", "kind": "filter", "kill_plugin": True,
         "image": {"content": "large.raw", "size": [512, 384], "canvas": [512, 384], "offsets": [0, 0]},
         "args": style},
        {"id": "after-kill", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": style},
        {"id": "working-resolution", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": {**style, "working-resolution": 0.5}},
        {"id": "marks", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": {**style, "marks": 1.0}},
        {"id": "cut-out", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": {**style, "style-file": str(work / "cut_out.png")}},
        {"id": "cut-out-keep", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": {**style, "style-file": str(work / "cut_out.png"), "backdrop": "keep"}},
        {"id": "missing-style", "kind": "filter", "image": {**main, "canvas": [48, 40], "offsets": [0, 0]},
         "args": {**style, "style-file": str(work / "nope.png")}},
    ]
    proc = gimp_host.run_batch(work, {"scenarios": scenarios},
                               env={"ADAIN_CONFIG": str(work / "engine.json"), "ADAIN_MODEL": str(model)})
    results_file = work / "results.json"
    worker_log = "\n".join(p.read_text(errors="replace")[-3000:] for p in (work / "worker").glob("*.log"))
    diagnostics = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}\n" \
                  f"worker log:\n{worker_log}"
    if not results_file.exists():
        pytest.fail(f"GIMP produced no results\n{diagnostics}")
    results = json.loads(results_file.read_text())
    return results, work, inputs, model, diagnostics


def _result(session, scenario: str) -> dict:
    results, *_, diagnostics = session
    result = results.get(scenario)
    assert result is not None, f"scenario {scenario} did not run\n{diagnostics}"
    assert "exception" not in result, f"{result['exception']}\n{diagnostics}"
    return result


def _pixels(work: Path, info: dict) -> np.ndarray:
    data = np.frombuffer((work / info["file"]).read_bytes(), dtype=np.uint8)
    return data.reshape(info["height"], info["width"], 4)


@pytest.fixture(scope="module")
def engine_output(session):
    """What adain_core computes directly for the same pixels (the reference for GIMP's results)."""
    import adain_core

    _, work, _, model, _ = session
    engine = adain_core.load(str(model))

    def stylize(rgba: np.ndarray, scale: float = 1.0, style: str = "style_a", backdrop: str = "ignore",
                marks: float = DEFAULT_MARKS) -> np.ndarray:
        card = engine.encode_style(str(work / f"{style}.png"), size=STYLE_SIZE, backdrop=backdrop)
        out = engine.stylize(rgba[..., :3].astype(np.float32) / 255.0, card, alpha=1.0, tile="auto", scale=scale,
                             marks=marks)
        rgb = np.rint(np.clip(np.asarray(out, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
        return np.concatenate([rgb, rgba[..., 3:]], axis=2)

    return stylize


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff[..., 3].max() == 0, "alpha must pass through unchanged"
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (diff.max(), diff.mean())


def test_registered_with_menu_path_and_arguments(session):
    result = _result(session, "registration")
    assert result["registered"]
    assert result["menu_label"] == "Style Transfer (AdaIN)…"
    assert result["menu_paths"] == ["<Image>/Filters/Artistic"]
    assert result["image_types"] == "RGB*"
    assert result["sensitivity"] & result["drawable_flag"]
    names = [a["name"] for a in result["args"]]
    assert names[:3] == ["run-mode", "image", "drawables"]
    assert names[3:] == PROC_ARGS
    defaults = {a["name"]: a.get("default") for a in result["args"]}
    assert defaults["use-selection"] is True
    assert defaults["output"] == "new-layer"
    assert defaults["alpha"] == 1.0 and defaults["color-mode"] == "palette"
    assert defaults["working-resolution"] == 1.0
    assert defaults["backdrop"] == "ignore"
    assert defaults["marks"] == DEFAULT_MARKS


def test_new_layer_equals_engine_with_offsets_and_alpha(session, engine_output):
    result = _result(session, "new-layer")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    top, source = result["layers"]
    assert top["name"] == "style_a", "the new layer is named after the style and sits above the source"
    assert top["offsets"] == [10, 7] and (top["width"], top["height"]) == (48, 40)
    assert not top["has_mask"]
    _assert_close(_pixels(work, top), engine_output(inputs["main"]))
    np.testing.assert_array_equal(_pixels(work, source), inputs["main"])


def test_layer_larger_than_canvas(session, engine_output):
    result = _result(session, "larger-than-canvas")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    top, _ = result["layers"]
    assert top["offsets"] == [-6, -5] and (top["width"], top["height"]) == (56, 44)
    _assert_close(_pixels(work, top), engine_output(inputs["big"]))


def test_rectangular_selection_changes_only_the_selection(session, engine_output):
    result = _result(session, "selection-replace")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    (layer,) = result["layers"]
    after, before = _pixels(work, layer), inputs["main"]
    x, y, w, h = 8, 6, 24, 20
    outside = np.ones(before.shape[:2], bool)
    outside[y:y + h, x:x + w] = False
    np.testing.assert_array_equal(after[outside], before[outside])
    inside = after[y:y + h, x:x + w]
    assert np.abs(inside.astype(int) - before[y:y + h, x:x + w]).mean() > 5, "the selection must be stylised"
    _assert_close(inside, engine_output(before[y:y + h, x:x + w]))
    assert not result["selection_empty"], "the selection is kept"


def test_selection_new_layer_is_cropped_and_masked(session):
    result = _result(session, "selection-new-layer")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    top, source = result["layers"]
    assert top["offsets"] == [8, 6] and (top["width"], top["height"]) == (24, 20)
    assert top["has_mask"], "the selection becomes the new layer's mask"
    np.testing.assert_array_equal(_pixels(work, source), inputs["main"])


def test_use_selection_off_replaces_whole_layer(session, engine_output):
    result = _result(session, "ignore-selection-replace")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    (layer,) = result["layers"]
    _assert_close(_pixels(work, layer), engine_output(inputs["main"]))
    assert not result["selection_empty"], "the user's selection is restored"


def test_working_resolution_equals_engine(session, engine_output):
    result = _result(session, "working-resolution")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    top, _ = result["layers"]
    assert (top["width"], top["height"]) == (48, 40)
    _assert_close(_pixels(work, top), engine_output(inputs["main"], scale=0.5))


def test_marks_equal_engine(session, engine_output):
    result = _result(session, "marks")
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    top, _ = result["layers"]
    _assert_close(_pixels(work, top), engine_output(inputs["main"], marks=1.0))
    assert np.abs(engine_output(inputs["main"], marks=1.0).astype(int) - engine_output(inputs["main"])).max() > 2


@pytest.mark.parametrize("scenario, backdrop", [("cut-out", "ignore"), ("cut-out-keep", "keep")])
def test_cut_out_style_backdrop_equals_engine(session, engine_output, scenario, backdrop):
    """A style on a white surround: left out by default, kept with backdrop=keep, as adain_core does."""
    result = _result(session, scenario)
    _, work, inputs, *_ = session
    assert result["status"] == "success", result
    top, _ = result["layers"]
    _assert_close(_pixels(work, top), engine_output(inputs["main"], style="cut_out", backdrop=backdrop))
    other = _result(session, "cut-out" if backdrop == "keep" else "cut-out-keep")["layers"][0]
    assert np.abs(_pixels(work, top).astype(np.int16) - _pixels(work, other)).max() > MAX_LEVELS  # the choice counts


def test_two_styles_mixed(session):
    result = _result(session, "mix")
    assert result["status"] == "success", result
    assert result["layers"][0]["name"] == "style_a + style_b"


@pytest.mark.parametrize("scenario, expected", [
    ("no-python", "/nonexistent/bin/python3"),
    ("no-engine", "not installed"),
    ("missing-style", "style-file"),  # GIMP itself refuses a missing file for an OPEN file argument
])
def test_errors_leave_image_untouched(session, scenario, expected):
    result = _result(session, scenario)
    _, work, inputs, *_ = session
    assert result["status"] in ("execution-error", "calling-error"), result
    assert result["message"] and expected in result["message"], result["message"]
    if scenario != "missing-style":
        assert "adain install gimp" in result["message"], "the message says exactly what to run"
    (layer,) = result["layers"]
    np.testing.assert_array_equal(_pixels(work, layer), inputs["main"])


@pytest.fixture(scope="module")
def ui_session(gimp_host, session):
    """A second GIMP session, with the UI on a private Xvfb: undo is only reachable through the UI."""
    _, work, inputs, model, _ = session
    undo_work = work / "undo"
    undo_work.mkdir()
    (undo_work / "main.raw").write_bytes(inputs["main"].tobytes())
    style = {"style-file": str(work / "style_a.png"), "style-size": STYLE_SIZE}
    image = {"content": "main.raw", "size": [48, 40], "canvas": [48, 40], "offsets": [0, 0],
             "selection": [8, 6, 24, 20]}
    scenarios = [
        # replace + "use selection" off: lifts and restores the selection, merges a shadow: all one undo step.
        {"id": "undo-replace", "kind": "undo", "image": image, "expect_layers": 1,
         "args": {**style, "output": "replace", "use-selection": False}},
        {"id": "undo-new-layer", "kind": "undo", "image": image, "expect_layers": 1, "args": style},
        # The dialog: OK with the caller's values; then OK with nothing passed (GIMP's remembered values); Cancel.
        {"id": "dialog-ok", "kind": "interactive", "image": {**image, "selection": None}, "key": "Return",
         "args": {**style, "alpha": 0.5}},
        {"id": "dialog-remembered", "kind": "interactive", "image": {**image, "selection": None}, "key": "Return",
         "args": {}},
        {"id": "dialog-cancel", "kind": "interactive", "image": {**image, "selection": None}, "key": "Escape",
         "args": {}},
    ]
    (undo_work / "engine.json").write_text(json.dumps({"python": str(gimp_host.engine_python)}))
    proc = gimp_host.run_batch(undo_work, {"scenarios": scenarios}, gui=True, binds=[work],
                               env={"ADAIN_CONFIG": str(undo_work / "engine.json"), "ADAIN_MODEL": str(model)})
    diagnostics = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    if not (undo_work / "results.json").exists():
        pytest.fail(f"GIMP (UI) produced no results\n{diagnostics}")
    return json.loads((undo_work / "results.json").read_text()), undo_work, inputs, model, diagnostics


@pytest.mark.parametrize("scenario, layers_after_filter", [("undo-replace", 1), ("undo-new-layer", 2)])
def test_one_undo_restores_the_original(ui_session, scenario, layers_after_filter):
    result = _result(ui_session, scenario)
    _, work, inputs, *_ = ui_session
    assert result["status"] == "success", result
    assert result["layers_after_filter"] == layers_after_filter
    if layers_after_filter == 1:
        changed = np.abs(_pixels(work, result["changed"]).astype(int) - inputs["main"]).mean()
        assert changed > 5, "the filter replaced the pixels"
    else:
        assert (result["changed"]["width"], result["changed"]["height"]) == (24, 20), "new layer = selection bounds"
    assert result["xdotool"][0] == 0, result["xdotool"]
    (layer,) = result["layers"]
    np.testing.assert_array_equal(_pixels(work, layer), inputs["main"])
    assert not result["selection_empty"], "the user's selection is back"


def test_dialog_runs_and_remembers_values(ui_session):
    first, second = _result(ui_session, "dialog-ok"), _result(ui_session, "dialog-remembered")
    _, work, *_ = ui_session
    assert first["xdotool"][0] == 0 and second["xdotool"][0] == 0, (first["xdotool"], second["xdotool"])
    assert first["status"] == "success" and second["status"] == "success", (first, second)
    assert len(first["layers"]) == len(second["layers"]) == 2
    # same style, strength 0.5 and size although the second call passed nothing: the dialog remembered them
    np.testing.assert_array_equal(_pixels(work, second["layers"][0]), _pixels(work, first["layers"][0]))


def test_dialog_cancel_leaves_image_untouched(ui_session):
    result = _result(ui_session, "dialog-cancel")
    _, work, inputs, *_ = ui_session
    assert result["status"] == "cancel", result
    (layer,) = result["layers"]
    np.testing.assert_array_equal(_pixels(work, layer), inputs["main"])


def test_cancel_kills_plugin_and_worker_drops_the_job(session):
    """GIMP's Cancel button kills the plug-in (gimp_plug_in_close): nothing is written, the worker notices the
    closed connection, drops the result and keeps serving."""
    result = _result(session, "killed")
    _, work, inputs, *_ = session
    assert result["killed"], "the plug-in process was found and killed mid-job"
    assert result["status"] != "success"
    (layer,) = result["layers"]
    np.testing.assert_array_equal(_pixels(work, layer), inputs["large"])
    assert "job cancelled by the client" in result["worker_log"]
    assert _result(session, "after-kill")["status"] == "success"
