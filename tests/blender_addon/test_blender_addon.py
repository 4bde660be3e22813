"""The Blender extension with the real bpy (5.0.1 wheel): install from the zip, the node, stills and animations
through Render Stylized compared with the engine run directly on the plain render, no-engine errors, the worker,
unregister/re-register.

Tolerance: the add-on's output PNG is compared with ``engine.stylize`` applied to the plain render's PNG (both 8-bit
sRGB "as render", i.e. after the same view transform). They differ by 8-bit rounding of the result image and the
compositor's round trip through scene-linear: at most 2/255 per channel and a mean below 0.5/255 (measured:
max 1/255, mean 0.08/255).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.host

MAX_DIFF = 2.0
MEAN_DIFF = 0.5


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def _alpha(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32)[..., 3]


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, what
    diff = np.abs(actual - expected)
    assert diff.max() <= MAX_DIFF and diff.mean() <= MEAN_DIFF, (
        f"{what}: max {diff.max():.1f}/255, mean {diff.mean():.3f}/255 (allowed {MAX_DIFF}, {MEAN_DIFF})")


def _reference(engine, style_path, plain_png, color: str = "palette") -> np.ndarray:
    card = engine.encode_style(style_path, size=512)
    return np.asarray(engine.stylize(Image.open(plain_png), card, alpha=1.0, color=color).convert("RGB"),
                      dtype=np.float32)


@pytest.fixture(scope="module")
def still(run_session):
    return run_session("still")


def test_zip_installs_and_enables(still):
    report, _ = still
    assert report["install"]["result"] == ["FINISHED"]
    assert report["install"]["module_loaded"] and report["install"]["node_registered"]


def test_node_in_add_menu_and_tree(still):
    report, _ = still
    assert report["menu_has_node"]
    assert report["node_in_tree"]


def test_still_matches_engine_on_plain_render(still, engine, style_path):
    report, out = still
    assert report["standard"]["error"] is None, report["standard"]
    plain = out / "plain_standard_.png"
    stylized = _rgb(out / "stylized_standard.png")
    expected = _reference(engine, style_path, plain)
    _assert_close(stylized, expected, "Standard view")
    assert np.abs(stylized - _rgb(plain)).mean() > 20, "the output is not stylised"
    assert report["packed"], "the node's result image is not packed into the .blend"
    assert report["switch_on_after"] and report["result_info"] == "Frame 1"


def test_plain_render_passes_through(still):
    report, out = still
    # A plain F12-style render must not reuse the stored result: it equals the first plain render.
    np.testing.assert_array_equal(_rgb(out / "plain_again_.png"), _rgb(out / "plain_standard_.png"))
    assert report["switch_on_after_plain_render"], "the stored result is switched back on after a plain render"


def test_agx_view(still, engine, style_path):
    """AgX: the network sees the AgX-transformed render. By default the result returns through "AgX Base sRGB"
    (scene-referred); colours AgX cannot show (this random model paints nearly pure primaries) are compressed, so
    only hues are compared. With "Exact Display Output" the file holds the network's picture within rounding."""
    report, out = still
    assert report["agx"]["error"] is None, report["agx"]
    assert report["agx_colorspace"] == "AgX Base sRGB"
    expected = _reference(engine, style_path, out / "plain_agx_.png", color="style")  # the scenario's setting
    through_view = _rgb(out / "stylized_agx.png")
    plain = _rgb(out / "plain_agx_.png")
    assert np.abs(through_view - expected).mean() < np.abs(plain - expected).mean() / 3
    ordered = np.sort(expected, axis=2)
    dominant = ordered[..., 2] - ordered[..., 1] > 64
    same_hue = through_view.argmax(axis=2) == expected.argmax(axis=2)
    assert dominant.sum() > 100 and same_hue[dominant].mean() > 0.95

    assert report["agx_exact"]["error"] is None, report["agx_exact"]
    assert report["view_after_exact"] == "AgX", "the Standard view of the output pass was not restored"
    _assert_close(_rgb(out / "stylized_agx_exact.png"), expected, "AgX view, exact display output")


def test_pass_used_downstream_forces_full_render(still, engine, style_path):
    report, out = still
    assert report["downstream_pass"]["error"] is None, report["downstream_pass"]
    assert "full re-render" in report["_stdout"]
    path = out / "stylized_setalpha.png"
    assert _alpha(path).min() == 255, "Render Layers' Alpha was blanked (muted) in the output pass"
    _assert_close(_rgb(path), _reference(engine, style_path, out / "plain_standard_.png"), "Set Alpha tree")


def test_unregister_reregister_clean(still, engine, style_path):
    report, out = still
    assert report["disabled"] == {"node_registered": False, "operator": False, "handlers_left": 0,
                                  "scene_property": False, "menu_entries_left": 0}
    assert report["reenabled"] == {"node_registered": True, "handlers": 3, "menu_has_node": True,
                                   "style_kept": True}
    assert report["after_reenable"]["error"] is None, report["after_reenable"]
    _assert_close(_rgb(out / "stylized_reenabled.png"), _reference(engine, style_path, out / "plain_standard_.png"),
                  "after re-enable")


def test_chained_nodes(still, engine, style2_path):
    report, out = still
    assert report["chained"]["error"] is None, report["chained"]
    assert "level 2: compositor-only capture" in report["_stdout"]
    # The second node's input is the first node's result, i.e. the single-node output of the same scene.
    card = engine.encode_style(style2_path, size=512)
    expected = np.asarray(engine.stylize(Image.open(out / "stylized_reenabled.png"), card).convert("RGB"),
                          dtype=np.float32)
    _assert_close(_rgb(out / "stylized_chained.png"), expected, "chained AdaIN nodes")


def test_working_resolution(still, engine, style_path):
    report, out = still
    assert report["working_resolution"]["error"] is None, report["working_resolution"]
    card = engine.encode_style(style_path, size=512)
    expected = np.asarray(engine.stylize(Image.open(out / "plain_standard_.png"), card, scale=0.5).convert("RGB"),
                          dtype=np.float32)
    _assert_close(_rgb(out / "stylized_half.png"), expected, "working resolution 0.5")


def test_marks(still, engine, style_path):
    report, out = still
    assert report["marks"]["error"] is None, report["marks"]
    card = engine.encode_style(style_path, size=512)
    plain = Image.open(out / "plain_standard_.png")
    expected = np.asarray(engine.stylize(plain, card, marks=1.0).convert("RGB"), dtype=np.float32)
    _assert_close(_rgb(out / "stylized_marks.png"), expected, "marks 1")
    assert np.abs(expected - np.asarray(engine.stylize(plain, card).convert("RGB"), dtype=np.float32)).max() > 2


def test_cut_out_style_backdrop(still, engine, cutout_path):
    """The node's Style Backdrop: a white surround left out (default) or kept, each as adain_core does."""
    report, out = still
    outputs = []
    for backdrop in ("ignore", "keep"):
        assert report[f"backdrop_{backdrop}"]["error"] is None, report[f"backdrop_{backdrop}"]
        card = engine.encode_style(cutout_path, size=512, backdrop=backdrop)
        assert (card.painted[0] is None) == (backdrop == "keep")
        expected = np.asarray(engine.stylize(Image.open(out / "plain_standard_.png"), card).convert("RGB"),
                              dtype=np.float32)
        outputs.append(_rgb(out / f"stylized_backdrop_{backdrop}.png"))
        _assert_close(outputs[-1], expected, f"backdrop {backdrop}")
    assert np.abs(outputs[0] - outputs[1]).max() > MAX_DIFF


def test_image_editor_stylize_mixes_image_and_file_styles(still, engine, style_path, style2_path):
    import adain_core

    report, out = still
    assert report["image_op"] == ["FINISHED"], report["image_op"]
    assert report["image_op_created"] == ["plain_standard_.png AdaIN"]
    cards = [engine.encode_style(style_path, size=512), engine.encode_style(style2_path, size=512)]
    mixed = adain_core.mix(cards, [0.7, 0.3])
    expected = np.asarray(engine.stylize(Image.open(out / "plain_standard_.png"), mixed).convert("RGB"),
                          dtype=np.float32)
    _assert_close(_rgb(out / "image_op.png"), expected, "Stylize Image")


def test_animation_writes_three_stylised_frames(run_session, engine, style_path):
    temporal = 0.5
    report, out = run_session("animation", temporal=temporal)
    assert report["stylize"]["error"] is None, report["stylize"]
    frames = [f"anim_{n:04d}.png" for n in (1, 2, 3)]
    assert all(name in report["files"] for name in frames), report["files"]
    assert report["frame_after"] == 2 and report["result_info"] == "Frames 1–3"
    # Cancelling a run mid-way raises EngineCancelled, writes no output and restores the tree.
    assert report["capture_nodes_during"] == 1
    assert report["cancel"] == {"raised": "EngineCancelled", "capture_nodes_left": 0, "render_layers_muted": False,
                                "running": False, "frame": 2}
    assert not any(name.startswith("cancelled_") for name in report["files"])
    plain = [Image.open(out / f"plain_{n:04d}.png") for n in (1, 2, 3)]
    card = engine.encode_style(style_path, size=512)
    expected = [np.asarray(img.convert("RGB"), dtype=np.float32)
                for img in engine.stylize_frames(plain, card, temporal=temporal)]
    for name, reference in zip(frames, expected):
        _assert_close(_rgb(out / name), reference, name)
    # The frames differ (the cube moves) and temporal smoothing was applied (differs from per-frame stylize).
    assert np.abs(_rgb(out / frames[0]) - _rgb(out / frames[2])).mean() > 1
    independent = np.asarray(engine.stylize(plain[2], card).convert("RGB"), dtype=np.float32)
    assert np.abs(_rgb(out / frames[2]) - independent).max() > MAX_DIFF


def test_no_engine_reports_error_and_writes_nothing_then_worker_works(run_session, bpy_python, engine, style_path):
    report, out = run_session("no_engine", engine_python=bpy_python)
    assert report["engine_hidden"], "the session could still import adain_core"
    assert report["auto"]["result"] == ["CANCELLED"]
    assert "AdaIN engine not available" in report["auto"]["error"]
    assert "Preferences" in report["auto"]["error"]
    assert f"{bpy_python} -m pip install adain-style-transfer" in report["auto"]["error"]  # this host's Python
    assert report["files_after_auto"] == []
    assert "does not exist" in report["bad_python"]["error"]
    assert report["files_after_bad_python"] == []
    # With the engine's Python set, the worker stylises the same as the engine in-process.
    assert report["worker"]["error"] is None, report["worker"]
    assert report["backend"] == "WorkerBackend"
    _assert_close(_rgb(out / "still_.png"), _reference(engine, style_path, out / "plain_.png"), "worker")


def test_blender_4x_with_worker(run_session, bpy4_python, bpy_python, engine, style_path):
    """Blender 4.5 LTS (``scene.node_tree``, Composite node, 4.x File Output and Switch), engine in the worker,
    including an animation with temporal smoothing (frames chained as a worker sequence)."""
    temporal = 0.5
    report, out = run_session("legacy", python=bpy4_python, engine_python=bpy_python, temporal=temporal)
    assert report["version"][0] == 4
    assert report["install"]["result"] == ["FINISHED"] and report["install"]["node_registered"]
    assert report["tree_is_scene_node_tree"]
    assert report["still"]["error"] is None, report["still"]
    assert report["packed"]
    assert report["backend"] == "WorkerBackend"
    expected = _reference(engine, style_path, out / "plain_.png")
    _assert_close(_rgb(out / "still_.png"), expected, "Blender 4.x still")
    assert report["animation"]["error"] is None, report["animation"]
    frames = [f"anim_{n:04d}.png" for n in (1, 2, 3)]
    assert set(frames) <= set(report["files"]), report["files"]
    plain = [Image.open(out / f"plain_anim_{n:04d}.png") for n in (1, 2, 3)]
    card = engine.encode_style(style_path, size=512)
    smoothed = [np.asarray(img.convert("RGB"), dtype=np.float32)
                for img in engine.stylize_frames(plain, card, temporal=temporal)]
    for name, reference in zip(frames, smoothed):
        _assert_close(_rgb(out / name), reference, f"Blender 4.x {name} (worker, temporal {temporal})")
    # The smoothing really happened through the worker: the last frame differs from that frame stylised alone.
    independent = np.asarray(engine.stylize(plain[2], card).convert("RGB"), dtype=np.float32)
    assert np.abs(_rgb(out / frames[2]) - independent).max() > MAX_DIFF


@pytest.mark.parametrize("where", ["in-process", "worker (Blender 4.5)"])
def test_first_use_with_the_bundled_model_and_an_empty_cache(run_session, bpy_python, bpy4_python, style_path,
                                                             tmp_path, monkeypatch, where):
    """Installed from the zip, nothing configured but the style: the default model renders with an empty cache."""
    import adain_core

    home = tmp_path / "adain-home"
    worker = where.startswith("worker")
    report, out = run_session("first_use", python=bpy4_python if worker else None,
                              env_extra={"ADAIN_HOME": str(home)}, **({"engine_python": bpy_python} if worker else {}))
    assert report["install"]["result"] == ["FINISHED"] and report["model"] == "default"
    assert report["still"]["error"] is None, report["still"]
    assert report["backend"] == ("WorkerBackend" if worker else "InProcessBackend")
    monkeypatch.setenv("ADAIN_HOME", str(home))  # the same (bundled) encoder as the session's
    default = adain_core.load("default", device="cpu")
    _assert_close(_rgb(out / "still_.png"), _reference(default, style_path, out / "plain_.png"), where)
    assert not home.exists() or not any(home.rglob("*.safetensors")), "nothing may be fetched into the cache"
