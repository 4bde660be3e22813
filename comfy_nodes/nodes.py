"""The AdaIN nodes (ComfyUI V3 schema). Each node validates its inputs, converts at the boundary
(:mod:`.layout`) and calls ``adain_core``; no model math happens here."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import comfy.utils
import folder_paths
import torch
from comfy import model_management
from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

import adain_core
from adain_core.fingerprint import file_identity
from adain_core.vocabulary import BACKDROP_MODES, CARD_SUFFIX, COLOR_MODES, DEFAULT_MARKS, PRECISIONS, TILE_MODES

from . import models
from .layout import InputError, engine_to_image, image_to_engine, mask_to_engine, select_frame

__all__ = [
    "AdaINModelLoader",
    "AdaINStyleEncode",
    "AdaINStyleMix",
    "AdaINSaveStyle",
    "AdaINLoadStyle",
    "AdaINStylize",
    "AdaINExtension",
    "AdaINNodeError",
    "NODES",
]

logger = logging.getLogger("adain.comfy")

CATEGORY = "style_transfer/AdaIN"
AdaINModel = io.Custom("ADAIN_MODEL")
AdaINStyle = io.Custom("ADAIN_STYLE")

TILE_CHOICES = [*TILE_MODES, "256", "384", "512", "768", "1024", "1536", "2048"]
MIN_OOM_TILE = 128
# Without temporal smoothing, images go to the engine in groups of up to MAX_GROUP images and GROUP_PIXELS pixels.
MAX_GROUP = 8
GROUP_PIXELS = 2**20
# torch < 2.5 has only the CUDA class; ComfyUI's OOM_EXCEPTION is plain Exception on CPU, far too broad to catch.
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
ROOM_SIDE = 1024  # on a GPU, ask ComfyUI to unload other models until one pass of this size fits


class AdaINNodeError(RuntimeError):
    """A failure that is not the user's input (memory); the message says what to change."""


def _file_fingerprint(path: str | None) -> tuple:
    """The engine's file identity, so that ComfyUI re-runs a loader when the file behind an unchanged name changes."""
    if path is None or not os.path.isfile(path):
        return (path, None)
    return tuple(file_identity(path))


class AdaINModelLoader(io.ComfyNode):
    """Load an AdaIN model once per process; later prompts reuse it while the file is unchanged."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaINModelLoader",
            display_name="Load AdaIN Model",
            category=CATEGORY,
            description=(
                "Loads an AdaIN model (encoder + decoder). Models live in ComfyUI/models/adain/ (.safetensors or an "
                "original decoder.pth); 'default (bundled)' is the decoder shipped with the pack. A model is read "
                "from disk once and cached until its file changes."
            ),
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=models.model_choices(),
                    default=models.BUNDLED_DEFAULT,
                    tooltip="Model file from models/adain/ (and adain paths in extra_model_paths.yaml), or the "
                    "bundled default.",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="auto",
                    tooltip="Compute precision. auto = fp16 on CUDA, bf16 on CPUs with native bf16, else fp32. fp32 "
                    "is the reference; half precision halves memory and is faster.",
                ),
            ],
            outputs=[AdaINModel.Output(display_name="model")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str) -> bool | str:
        # ComfyUI 0.3.75 does not check V3 combo values itself; a stale or typed name must fail before running.
        # (Only model_name in the signature: ComfyUI attributes the error to every argument listed here.)
        if model_name not in models.model_choices():
            folders = ", ".join(folder_paths.get_folder_paths(models.MODEL_FOLDER))
            return f"AdaIN model file {model_name!r} not found in the adain model folders ({folders})"
        return True

    @classmethod
    def fingerprint_inputs(cls, model_name: str, precision: str) -> tuple:
        path = None
        if model_name != models.BUNDLED_DEFAULT:
            path = folder_paths.get_full_path(models.MODEL_FOLDER, model_name)
        return (_file_fingerprint(path), precision)

    @classmethod
    def execute(cls, model_name: str, precision: str) -> io.NodeOutput:
        return io.NodeOutput(models.load_model(model_name, precision))


class AdaINStyleEncode(io.ComfyNode):
    """Turn style images into one style card (several images are averaged with equal weights)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaINStyleEncode",
            display_name="AdaIN Style Encode",
            category=CATEGORY,
            description=(
                "Encodes style images into a style card: the channel statistics AdaIN transfers. A batch of several "
                "images gives ONE card, their equal-weight average (use AdaIN Style Mix for other weights). The style "
                "image is scaled keeping its aspect ratio, never stretched to the content's shape."
            ),
            inputs=[
                AdaINModel.Input(
                    "model", tooltip="From Load AdaIN Model; the card only works with this model's encoder."
                ),
                io.Image.Input("style_image", tooltip="Style image(s). A batch is averaged into one card."),
                io.Int.Input(
                    "style_size",
                    default=512,
                    min=0,
                    max=4096,
                    step=8,
                    tooltip="Pixels of the style image's shorter side before encoding (aspect ratio kept). Larger "
                    "sizes transfer finer brush strokes. 0 = use the image at its own size.",
                ),
                io.Combo.Input(
                    "backdrop",
                    options=list(BACKDROP_MODES),
                    default=BACKDROP_MODES[0],
                    optional=True,  # API prompts written before this input keep working (ignore)
                    tooltip="A figure cut out on a flat white or black surround (a character portrait, clip art): "
                    "ignore = the style is the figure's colours and strokes, not the surround's; keep = the whole "
                    "image (line art whose white paper is the look).",
                ),
            ],
            outputs=[AdaINStyle.Output(display_name="style")],
        )

    @classmethod
    def execute(cls, model, style_image: torch.Tensor, style_size: int,
                backdrop: str = BACKDROP_MODES[0]) -> io.NodeOutput:
        pixels = image_to_engine(style_image, "style_image")
        size = None if style_size == 0 else style_size
        cards = []
        bar = comfy.utils.ProgressBar(pixels.shape[0])  # each tick is also an interrupt point
        for i in range(pixels.shape[0]):
            model_management.throw_exception_if_processing_interrupted()
            cards.append(model.encode_style(pixels[i : i + 1], size=size, name=f"style image {i + 1}",
                                            backdrop=backdrop))
            bar.update(1)
        card = cards[0] if len(cards) == 1 else adain_core.mix(cards, [1.0] * len(cards))
        return io.NodeOutput(card)


class AdaINStyleMix(io.ComfyNode):
    """Weighted mix of 2 to 4 style cards."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        inputs: list = []
        for i in range(1, 5):
            optional = i > 2
            inputs.append(
                AdaINStyle.Input(
                    f"style_{i}",
                    optional=optional,
                    tooltip=f"Style card {i}" + (" (optional)." if optional else "."),
                )
            )
            inputs.append(
                io.Float.Input(
                    f"weight_{i}",
                    optional=optional,
                    default=1.0,
                    min=0.0,
                    max=100.0,
                    step=0.05,
                    tooltip=f"Relative weight of style {i}; weights are normalised to sum to 1, so 1/1 is an even "
                    "mix. 0 leaves the style out. Ignored when the style is not connected.",
                )
            )
        return io.Schema(
            node_id="AdaINStyleMix",
            display_name="AdaIN Style Mix",
            category=CATEGORY,
            description="Interpolates 2-4 style cards (AdaIN's weighted style interpolation). All cards must come "
            "from the same model encoder.",
            inputs=inputs,
            outputs=[AdaINStyle.Output(display_name="style")],
        )

    @classmethod
    def execute(cls, style_1, weight_1: float, style_2, weight_2: float, style_3=None, weight_3: float = 1.0,
                style_4=None, weight_4: float = 1.0) -> io.NodeOutput:
        pairs = [(s, w) for s, w in ((style_1, weight_1), (style_2, weight_2), (style_3, weight_3),
                                     (style_4, weight_4)) if s is not None]
        if sum(w for _, w in pairs) <= 0:
            raise InputError("AdaIN Style Mix: all weights are 0; give at least one connected style a weight > 0")
        return io.NodeOutput(adain_core.mix([s for s, _ in pairs], [w for _, w in pairs]))


class AdaINSaveStyle(io.ComfyNode):
    """Write a style card to a file so it can be reused without its source images."""

    DESTINATIONS = ["output", "models/adain/styles"]

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaINSaveStyle",
            display_name="Save AdaIN Style",
            category=CATEGORY,
            description="Saves a style card as <prefix>_00001_.adainstyle.safetensors in ComfyUI's output folder or "
            "in models/adain/styles/ (where Load AdaIN Style finds it).",
            inputs=[
                AdaINStyle.Input("style", tooltip="The style card to save."),
                io.String.Input(
                    "filename_prefix",
                    default="adain/style",
                    tooltip="File name prefix; may contain subfolders (adain/style). A counter is appended.",
                ),
                io.Combo.Input(
                    "destination",
                    options=cls.DESTINATIONS,
                    default="models/adain/styles",
                    tooltip="output = ComfyUI's output folder; models/adain/styles = the style library.",
                ),
            ],
            outputs=[io.String.Output(display_name="filename")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, style, filename_prefix: str, destination: str) -> io.NodeOutput:
        if destination == "output":
            root = folder_paths.get_output_directory()
        else:
            root = folder_paths.get_folder_paths(models.STYLE_FOLDER)[0]
        os.makedirs(root, exist_ok=True)
        full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, root)
        os.makedirs(full_folder, exist_ok=True)
        name = f"{filename}_{counter:05}_{CARD_SUFFIX}"
        style.save(os.path.join(full_folder, name))
        relative = os.path.join(subfolder, name) if subfolder else name
        logger.info("AdaIN: saved style card %s", os.path.join(full_folder, name))
        return io.NodeOutput(
            relative,
            ui={"adain_styles": [{"filename": name, "subfolder": subfolder, "type": destination}]},
        )


class AdaINLoadStyle(io.ComfyNode):
    """Read a style card saved by Save AdaIN Style (or `adain card create`)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaINLoadStyle",
            display_name="Load AdaIN Style",
            category=CATEGORY,
            description="Loads a style card (*.adainstyle.safetensors) from models/adain/styles/ or the output folder.",
            inputs=[
                io.Combo.Input(
                    "style_name",
                    options=models.style_card_choices(),
                    tooltip="Style card file; refresh the browser (R) after saving new ones.",
                ),
            ],
            outputs=[AdaINStyle.Output(display_name="style")],
        )

    @classmethod
    def validate_inputs(cls, style_name: str) -> bool | str:
        if style_name not in models.style_card_choices():
            folders = ", ".join(folder_paths.get_folder_paths(models.STYLE_FOLDER))
            return f"style card {style_name!r} not found in {folders}"
        return True

    @classmethod
    def fingerprint_inputs(cls, style_name: str) -> tuple:
        return _file_fingerprint(folder_paths.get_full_path(models.STYLE_FOLDER, style_name))

    @classmethod
    def execute(cls, style_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path(models.STYLE_FOLDER, style_name)
        if path is None:
            folders = ", ".join(folder_paths.get_folder_paths(models.STYLE_FOLDER))
            raise adain_core.CardError(f"style card {style_name!r} not found in {folders}")
        return io.NodeOutput(adain_core.StyleCard.load(path))


class _Progress:
    """Feeds the engine's ``progress(done, total)`` of frame ``i`` of ``frames`` into one ComfyUI progress bar."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.bar = comfy.utils.ProgressBar(frames)

    def for_frame(self, index: int) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            total = max(int(total), 1)
            # Each update also passes ComfyUI's interrupt check (the server's progress hook).
            self.bar.update_absolute(index * total + int(done), self.frames * total)

        return report


def _cancel() -> bool:
    """Engine cancel hook: raise ComfyUI's own interrupt exception so the UI reports 'interrupted', not an error."""
    model_management.throw_exception_if_processing_interrupted()
    return False


def _make_room(model, height: int, width: int) -> None:
    """On a GPU, let ComfyUI unload its own models until one pass (up to ROOM_SIDE² px) fits; larger images are
    tiled by the engine's 'auto' mode within what is then free."""
    if model.device.type == "cpu":
        return
    from adain_core.tiling import estimate_pass_bytes

    need = estimate_pass_bytes(min(height, ROOM_SIDE), min(width, ROOM_SIDE), 1, model.precision)
    model_management.free_memory(need, model.device)


class AdaINStylize(io.ComfyNode):
    """Stylise an image batch with a style card; optional mask, second style, tiling and temporal smoothing."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaINStylize",
            display_name="AdaIN Stylize",
            category=CATEGORY,
            description=(
                "Arbitrary style transfer (AdaIN). Returns an image batch of exactly the input size. With a mask, "
                "'style' goes where the mask is 1 and 'style_unmasked' (or the untouched content) elsewhere. With "
                "temporal > 0 the batch is treated as video frames in order."
            ),
            inputs=[
                io.Image.Input("image", tooltip="Content image batch (or video frames, in order)."),
                AdaINModel.Input("model", tooltip="From Load AdaIN Model."),
                AdaINStyle.Input("style", tooltip="Style card from AdaIN Style Encode / Mix / Load."),
                io.Float.Input(
                    "alpha",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    display_mode=io.NumberDisplay.slider,
                    tooltip="Style strength: 0 = content reconstructed by the decoder, 1 = full style.",
                ),
                io.Combo.Input(
                    "color",
                    options=list(COLOR_MODES),
                    default=COLOR_MODES[0],
                    tooltip="style = take the style's colours; preserve = keep the content's colours (statistics "
                    "matched in RGB); luminance = transfer only brightness, keep the content's hue; palette = give "
                    "the result the painting's own colours (RGB mean and covariance, then half-way its lights and "
                    "darks, per mask region).",
                ),
                io.Combo.Input(
                    "tile",
                    options=TILE_CHOICES,
                    default="auto",
                    tooltip="Tile size in pixels for large images. auto = tile only when the image would not fit "
                    "in memory; off = one pass (may run out of memory).",
                ),
                io.Float.Input(
                    "temporal",
                    default=0.0,
                    min=0.0,
                    max=0.99,
                    step=0.01,
                    tooltip="Treat the batch as frames: smoothing of the content statistics from frame to frame, "
                    "reducing flicker. 0 = every image independently; 0.5 is a good start for video.",
                ),
                io.Float.Input(
                    "scale",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    optional=True,  # API prompts written before this input keep working (1 = full resolution)
                    tooltip="Working resolution: stylise at this fraction of the image size, then upsample "
                    "(edge-aware, guided by the image) back to its exact size. Faster, and the brush strokes come out "
                    "larger relative to the image. 1 = full resolution; 0 = auto (about 1.5 megapixels at most).",
                ),
                io.Float.Input(
                    "marks",
                    default=DEFAULT_MARKS,
                    min=0.0,
                    max=2.0,
                    step=0.05,
                    optional=True,  # API prompts written before this input keep working (they get the default)
                    tooltip="The painting's own marks in the image's flat areas (a clear sky, a plain wall), where "
                    "the decoder alone paints the same dabs for every painting: its most typical patches laid over "
                    "them. 0 = off; 1 = whole patches where the image is flat.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Where to apply 'style' (1) and where not (0); soft edges blend. Same width/height as "
                    "the image; one mask for all images or one per image.",
                ),
                AdaINStyle.Input(
                    "style_unmasked",
                    optional=True,
                    tooltip="Style for where the mask is 0. Without it that region keeps the content. Needs a mask.",
                ),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image: torch.Tensor, model, style, alpha: float, color: str, tile: str, temporal: float,
                scale: float = 1.0, marks: float = DEFAULT_MARKS, mask: torch.Tensor | None = None,
                style_unmasked=None) -> io.NodeOutput:
        pixels = image_to_engine(image, "image")
        batch, _, height, width = pixels.shape
        masks = mask_to_engine(mask, batch, height, width) if mask is not None else None
        if style_unmasked is not None and masks is None:
            logger.warning("AdaIN Stylize: style_unmasked is ignored because no mask is connected")
        options = adain_core.StylizeOptions(alpha=alpha, color=color, tile=tile, scale=scale, marks=marks)
        _make_room(model, height, width)
        while True:
            try:
                out = cls._run(model, pixels, _StyleLayout(style, style_unmasked, masks), options, temporal)
                break
            except adain_core.MemoryPreflightError as exc:
                raise AdaINNodeError(
                    f"AdaIN Stylize: one pass over this image needs about {exc.needed_bytes / 2**30:.2f} GiB but "
                    f"only {exc.budget_bytes / 2**30:.2f} GiB is free; set tile to 'auto' or a tile size"
                ) from None
            except OUT_OF_MEMORY:
                model_management.soft_empty_cache()
                next_tile = 512 if not isinstance(options.tile, int) else options.tile // 2
                if next_tile < MIN_OOM_TILE:
                    raise AdaINNodeError(
                        f"AdaIN Stylize ran out of memory on {model.device} even with {MIN_OOM_TILE}px tiles; "
                        "use a smaller image or free memory"
                    ) from None
                logger.warning("AdaIN Stylize: out of memory with tile=%s, retrying with %d px tiles",
                               options.tile, next_tile)
                options = options.replace(tile=next_tile)
        return io.NodeOutput(engine_to_image(out, model_management.intermediate_device()))

    @staticmethod
    def _run(model, pixels: torch.Tensor, styles: _StyleLayout, options, temporal: float) -> torch.Tensor:
        """Groups of images per engine call; frame by frame only with temporal > 0, where each frame's content
        statistics are smoothed with the previous frame's (the engine's ``stylize_frame`` state)."""
        batch, _, height, width = pixels.shape
        try:
            if temporal <= 0:
                # Whole groups of images per engine call; the groups stay small enough that an interrupt
                # (checked between calls and between tiles) is noticed soon.
                step = max(1, min(MAX_GROUP, GROUP_PIXELS // (height * width)))
                starts = range(0, batch, step)
                progress = _Progress(len(starts))
                results = []
                for index, start in enumerate(starts):
                    _cancel()
                    group = slice(start, start + step)
                    results.append(model.stylize(pixels[group], styles.spec(group), options,
                                                 progress=progress.for_frame(index), cancel=_cancel))
                return torch.cat(results, dim=0)
            progress = _Progress(batch)
            results, state = [], None
            for i in range(batch):
                _cancel()
                out, state = model.stylize_frame(pixels[i : i + 1], styles.spec(i), options, state=state,
                                                 temporal=temporal, progress=progress.for_frame(i), cancel=_cancel)
                results.append(out)
                progress.for_frame(i)(1, 1)
            return torch.cat(results, dim=0)
        except adain_core.Cancelled:
            raise model_management.InterruptProcessingException() from None


class _StyleLayout:
    """The node's style inputs as the engine's style spec: one card, or a masked card plus the unmasked one."""

    def __init__(self, style, style_unmasked, masks: torch.Tensor | None) -> None:
        self.style, self.style_unmasked, self.masks = style, style_unmasked, masks

    def spec(self, frames: int | slice):
        """The spec for one frame, or a slice of frames, of the batch."""
        if self.masks is None:
            return self.style
        if isinstance(frames, int):
            region = select_frame(self.masks, frames)
        else:
            region = self.masks[frames] if self.masks.shape[0] > 1 else self.masks
        spec = [(self.style, region)]
        if self.style_unmasked is not None:
            spec.append((self.style_unmasked, 1.0 - region))
        return spec


NODES: list[type[io.ComfyNode]] = [
    AdaINModelLoader,
    AdaINStyleEncode,
    AdaINStyleMix,
    AdaINSaveStyle,
    AdaINLoadStyle,
    AdaINStylize,
]


class AdaINExtension(ComfyExtension):
    """Lists the AdaIN nodes; registers the model folders when ComfyUI loads the pack."""

    @override
    async def on_load(self) -> None:
        models.register_folders()

    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        models.register_folders()
        return list(NODES)
