"""Where AdaIN models and style cards live in a ComfyUI install, and the process-wide model cache.

Models: ``models/adain/`` (folder name ``adain``; ``extra_model_paths.yaml`` entries ``adain: ...`` are kept).
Style cards: ``models/adain/styles/`` and the output folder (folder name ``adain_styles``).
"""

from __future__ import annotations

import logging
import os

import folder_paths
from comfy import model_management

import adain_core
from adain_core.cache import EngineCache
from adain_core.vocabulary import CARD_SUFFIX, MODEL_SUFFIXES, WEIGHTS_SUFFIX

__all__ = [
    "BUNDLED_DEFAULT",
    "MODEL_FOLDER",
    "STYLE_FOLDER",
    "register_folders",
    "model_choices",
    "style_card_choices",
    "load_model",
    "load_count",
]

logger = logging.getLogger(__name__)

MODEL_FOLDER = "adain"
STYLE_FOLDER = "adain_styles"
BUNDLED_DEFAULT = "default (bundled)"
_CACHE_SIZE = 2

# The engine's cache service: keyed by file identity, device and precision (a file replaced in place is reloaded,
# an unchanged one never is). Module level on purpose: V3 ``execute`` runs on a clone of the node class, so class
# attributes do not persist.
_engines = EngineCache(_CACHE_SIZE)


def register_folders() -> None:
    """Register ``adain`` and ``adain_styles`` with ``folder_paths``, keeping paths the user added (extra_model_paths)."""
    models_dir = os.path.join(folder_paths.models_dir, "adain")
    styles_dir = os.path.join(models_dir, "styles")
    _register(MODEL_FOLDER, [models_dir], set(MODEL_SUFFIXES))
    _register(STYLE_FOLDER, [styles_dir, folder_paths.get_output_directory()], {WEIGHTS_SUFFIX})


def _register(name: str, defaults: list[str], extensions: set[str]) -> None:
    # add_model_folder_path on a new name accepts every extension, so set the entry ourselves.
    current, _ = folder_paths.folder_names_and_paths.get(name, ([], set()))
    paths = list(current) + [d for d in defaults if d not in current]
    folder_paths.folder_names_and_paths[name] = (paths, set(extensions))


def model_choices() -> list[str]:
    """The bundled default followed by the model files found in every ``adain`` folder (cards excluded)."""
    files = [f for f in folder_paths.get_filename_list(MODEL_FOLDER) if not _is_card_or_style_path(f)]
    return [BUNDLED_DEFAULT] + sorted(files)


def style_card_choices() -> list[str]:
    """Style card files (``*.adainstyle.safetensors``) in ``models/adain/styles/`` and the output folder."""
    return sorted(f for f in folder_paths.get_filename_list(STYLE_FOLDER) if f.endswith(CARD_SUFFIX))


def _is_card_or_style_path(name: str) -> bool:
    return name.endswith(CARD_SUFFIX) or name.replace("\\", "/").split("/")[0] == "styles"


def resolve_model(name: str) -> str:
    """Map a choice from :func:`model_choices` to what ``adain_core.load`` takes (``"default"`` or a file path).

    Raises:
        adain_core.ModelError: the file is not in any ``adain`` folder (deleted or renamed since the list was made).
    """
    if name == BUNDLED_DEFAULT:
        return "default"
    path = folder_paths.get_full_path(MODEL_FOLDER, name)
    if path is None or not os.path.isfile(path):
        folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
        raise adain_core.ModelError(f"AdaIN model file {name!r} not found in the adain model folders ({folders})")
    return path


def load_model(name: str, precision: str = "auto") -> adain_core.Engine:
    """Load (or take from the cache) the engine for a model choice, on ComfyUI's torch device.

    Raises:
        adain_core.ModelError: missing, truncated or foreign model file.
    """
    target = resolve_model(name)
    device = model_management.get_torch_device()
    try:
        engine, hit = _engines.get(target, device=str(device), precision=precision)
    except adain_core.ModelError as exc:
        if target != "default":
            raise
        raise adain_core.ModelError(
            f"the bundled default model is not available ({exc}); put an AdaIN model into "
            f"{folder_paths.get_folder_paths(MODEL_FOLDER)[-1]} and select it in Load AdaIN Model"
        ) from None
    if hit:
        logger.debug("AdaIN: model %s taken from the cache", name)
    else:
        logger.info("AdaIN: loaded model %s on %s (encoder %s, load #%d)", name, device, engine.encoder_id,
                    _engines.loads)
    return engine


def load_count() -> int:
    """How many times a model file was actually read in this process (cache hits excluded)."""
    return _engines.loads
