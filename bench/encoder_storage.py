"""How much storing the bundled VGG16 encoder in fp16 changes the pictures: every content × style pair of the
evaluation set is stylised twice with the default decoder in fp32, once with the fp32 conversion of the source
weights (``adain models fetch``, in the cache) and once with those weights rounded to fp16, and the outputs compared.

    python bench/encoder_storage.py [--content DIR] [--style DIR] [--size 256] [--reference PATH]

Prints the mean and max absolute difference of the outputs (RGB in [0, 1]) and the two file sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adain_core import store  # noqa: E402
from adain_core.engine import Engine  # noqa: E402
from adain_core.images import load_image, pil_to_tensor  # noqa: E402
from adain_core.networks import build_encoder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"


def _shorter_side(image: Image.Image, size: int) -> Image.Image:
    scale = size / min(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)


def _engine(state: dict[str, torch.Tensor], model: store.ModelFile) -> Engine:
    encoder = build_encoder("vgg16")
    encoder.load_state_dict({k: v.float() for k, v in state.items()})
    return Engine(encoder, store.build_decoder_from(model), model.encoder_id, "cpu", "fp32", model.metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=DATA / "content")
    parser.add_argument("--style", type=Path, default=DATA / "style")
    parser.add_argument("--size", type=int, default=256, help="shorter side of content and style images in px")
    parser.add_argument("--reference", type=Path, default=None,
                        help="fp32 encoder conversion (default: the cache's, written by `adain models fetch`)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    reference_path = args.reference or store.encoder_path()
    if not reference_path.is_file():
        sys.exit(f"no fp32 conversion at {reference_path}: run `adain models fetch` first (or pass --reference)")
    reference = load_file(str(reference_path))
    rounded = {k: v.to(torch.float16) for k, v in reference.items()}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for name, state in (("fp32", reference), ("fp16", rounded)):
            path = Path(tmp) / f"{name}.safetensors"
            store.save_safetensors_atomic(state, path, {})
            sizes[name] = path.stat().st_size
    model = store.read_model(store.resolve_model("default"))
    exact, half = _engine(reference, model), _engine(rounded, model)

    contents = sorted(args.content.glob("*.jpg"))
    styles = sorted(args.style.glob("*.jpg"))
    total, count, worst = 0.0, 0, 0.0
    for style_path in styles:
        card_exact = exact.encode_style(style_path, size=args.size)
        card_half = half.encode_style(style_path, size=args.size)
        for content_path in contents:
            x, _ = pil_to_tensor(_shorter_side(load_image(content_path), args.size))
            a = exact.stylize(x, card_exact)
            b = half.stylize(x, card_half)
            diff = (a - b).abs()
            total += diff.sum().item()
            count += diff.numel()
            worst = max(worst, diff.max().item())
    print(f"pairs: {len(contents)} contents x {len(styles)} styles at {args.size} px (shorter side)")
    print(f"file size: fp32 {sizes['fp32'] / 1e6:.2f} MB, fp16 {sizes['fp16'] / 1e6:.2f} MB")
    print(f"fp16 vs fp32 encoder, outputs in [0, 1]: mean abs diff {total / count:.2e}, max abs diff {worst:.2e} "
          f"(1/255 = {1 / 255:.2e})")


if __name__ == "__main__":
    main()
