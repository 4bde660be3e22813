"""Two evaluations of ``adain-train evaluate`` compared: the means side by side, pair by pair, and the shipping rule.

A single checkpoint's means on 64 pairs swing by more than the differences the shipping rule looks at
(``docs/TRAINING_LOG.md``, stretch 13), so beside the means this counts, pair by pair, how often the new decoder
scores better than the base one (spread: photo by photo). ``adain-train compare BASE.json NEW.json`` prints both;
``--by-style`` adds the means painting by painting, since one painting's outliers can move a 64-pair mean
(stretch 17: one Wesnoth portrait's gram_gap). A metric one of the two evaluations lacks (``layout_corr`` before
2026-12-04) is left out of the comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["PAIR_METRICS", "CONTENT_CORR_SLACK", "COLOUR_GAP_SLACK", "LAYOUT_CORR_SLACK", "SPREAD_SLACK", "read_result",
           "pair_wins", "style_means", "ship_verdict", "format_wins", "format_by_style", "run_compare"]

#: per-pair metrics of :mod:`training.evaluate` and whether lower is better
PAIR_METRICS: dict[str, bool] = {"style_gap_ratio": True, "gram_gap": True, "colour_gap": True, "content_corr": False,
                                 "layout_corr": False, "grid_ratio": True}

#: how far the mean content_corr may fall for a new decoder to ship
CONTENT_CORR_SLACK = 0.02
#: how far the mean colour_gap may rise for a new decoder to ship: below what one run's mean moves between
#: checkpoints a few hundred steps apart (up to 0.04 in docs/TRAINING_LOG.md stretch 13, 0.013 in stretch 19) or with
#: a change of the engine's palette fit (0.005, stretch 19); the palette mode gives both decoders the painting's colours
COLOUR_GAP_SLACK = 0.01
#: how far the mean layout_corr may fall for a new decoder to ship: one run's checkpoints 75-1,000 steps apart moved
#: it by 0.002-0.011 (stretches 25 and 26), so more than 0.02 is a halo that came back, not noise
LAYOUT_CORR_SLACK = 0.02
#: how far the mean spread may fall for a new decoder to ship: nine single checkpoints of one recipe 250-3,250 steps
#: apart scored 0.931-0.947 (stretches 48-49), so a fall of up to 0.01 is noise, not outputs that grew alike
SPREAD_SLACK = 0.01


def read_result(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """One model's result from a ``results.json`` of ``adain-train evaluate``.

    Args:
        path: the results file.
        name: the model's row name (``NAME`` or ``NAME+MODE``); None: the only non-reference model, or the first.

    Returns:
        the row (``means``, ``pairs``, ``spread`` …) with the file's ``settings`` (sizes, colour modes) added.

    Raises:
        ValueError: one line naming the file, or the row and the rows it holds.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        models = doc["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{p}: not a results.json of adain-train evaluate ({type(exc).__name__}: {exc})") from None
    if name is None:
        own = [k for k, v in models.items() if "model" in v] or list(models)
        if not own:
            raise ValueError(f"{p}: holds no models")
        name = own[0]
    if name not in models:
        raise ValueError(f"{p}: no model {name!r}; it holds {', '.join(repr(k) for k in models)}")
    return {**models[name], "settings": doc.get("settings", {})}


def _shared(*results: dict[str, Any]) -> list[str]:
    """The metrics of :data:`PAIR_METRICS` that every one of ``results`` scored (older evaluations lack some)."""
    return [k for k in PAIR_METRICS if all(k in r["means"] for r in results)]


def pair_wins(base: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """How often ``new`` scores better than ``base`` on what both scored.

    Returns:
        metric → (wins, compared): per pair (matched by content and style names) for :data:`PAIR_METRICS` both
        scored, and per
        photo (matched by position; both must list the same photos) for ``spread``. A tie is not a win.
    """
    old = {(q["content"], q["style"]): q for q in base["pairs"]}
    both = [(old[(q["content"], q["style"])], q) for q in new["pairs"] if (q["content"], q["style"]) in old]
    if not both:
        raise ValueError("the two evaluations share no content × style pair")
    wins = {k: (sum((n[k] < b[k]) if PAIR_METRICS[k] else (n[k] > b[k]) for b, n in both), len(both))
            for k in _shared(base, new)}
    sb, sn = base.get("spread", []), new.get("spread", [])
    if sb and len(sb) == len(sn):
        wins["spread"] = (sum(n > b for b, n in zip(sb, sn)), len(sb))
    return wins


def style_means(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """A model's per-pair metrics averaged painting by painting.

    Returns:
        style file name → metric of :data:`PAIR_METRICS` it scored → mean over that painting's pairs, in the order
        the paintings first appear.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for q in result["pairs"]:
        groups.setdefault(q["style"], []).append(q)
    return {style: {k: sum(q[k] for q in qs) / len(qs) for k in _shared(result)} for style, qs in groups.items()}


def format_by_style(base: dict[str, Any], new: dict[str, Any]) -> str:
    """Per painting, the base and new means of each metric of :data:`PAIR_METRICS` (``base→new``), as printed text;
    only the paintings and metrics both evaluations scored."""
    b, n, metrics = style_means(base), style_means(new), _shared(base, new)
    short = {"style_gap_ratio": "style_gap"}
    lines = [f"{'painting':32s} " + " ".join(f"{short.get(k, k):>15s}" for k in metrics)]
    for style in (s for s in n if s in b):
        cells = " ".join(f"{f'{b[style][k]:.3f}→{n[style][k]:.3f}':>15s}" for k in metrics)
        lines.append(f"{style[-32:]:32s} {cells}")
    return "\n".join(lines)


def ship_verdict(base: dict[str, float], new: dict[str, float]) -> list[str]:
    """The shipping rule on two evaluations' means: gram_gap lower, colour_gap not higher by more than
    :data:`COLOUR_GAP_SLACK`, spread not lower by more than :data:`SPREAD_SLACK`, content_corr not lower by more
    than :data:`CONTENT_CORR_SLACK`, and layout_corr (when both means have it) not lower by more than
    :data:`LAYOUT_CORR_SLACK`. Returns what fails, one phrase each (empty: it ships)."""
    fails = [f"gram_gap {new['gram_gap']:.3f} not below {base['gram_gap']:.3f}"] \
        if new["gram_gap"] >= base["gram_gap"] else []
    if new["colour_gap"] > base["colour_gap"] + COLOUR_GAP_SLACK:
        fails.append(f"colour_gap {new['colour_gap']:.3f} more than {COLOUR_GAP_SLACK} above "
                     f"{base['colour_gap']:.3f}")
    if new["spread"] < base["spread"] - SPREAD_SLACK:
        fails.append(f"spread {new['spread']:.3f} more than {SPREAD_SLACK} below {base['spread']:.3f}")
    if new["content_corr"] < base["content_corr"] - CONTENT_CORR_SLACK:
        fails.append(f"content_corr {new['content_corr']:.3f} more than {CONTENT_CORR_SLACK} below "
                     f"{base['content_corr']:.3f}")
    if "layout_corr" in base and "layout_corr" in new and new["layout_corr"] < base["layout_corr"] - LAYOUT_CORR_SLACK:
        fails.append(f"layout_corr {new['layout_corr']:.3f} more than {LAYOUT_CORR_SLACK} below "
                     f"{base['layout_corr']:.3f}")
    return fails


def format_wins(base: dict[str, Any], new: dict[str, Any]) -> str:
    """The means of both side by side with the new one's pair-by-pair wins, and the verdict, as printed text."""
    wins = pair_wins(base, new)
    lines = [f"{'metric':16s} {'base':>7s} {'new':>7s} {'new better on':>14s}"]
    for k in (*_shared(base, new), "spread"):
        won = f"{wins[k][0]} / {wins[k][1]}" if k in wins else "-"
        lines.append(f"{k:16s} {base['means'][k]:7.3f} {new['means'][k]:7.3f} {won:>14s}")
    fails = ship_verdict(base["means"], new["means"])
    lines.append("shipping rule: " + ("met" if not fails else "not met (" + "; ".join(fails) + ")"))
    return "\n".join(lines)


def run_compare(args: argparse.Namespace) -> int:
    """``adain-train compare``: 0 when the shipping rule is met, 1 when not, 2 for unreadable input."""
    try:
        base = read_result(args.base, args.base_name)
        new = read_result(args.new, args.new_name)
        text = format_wins(base, new)
        if args.by_style:
            text = format_by_style(base, new) + "\n\n" + text
    except (ValueError, KeyError) as exc:
        print(f"adain-train compare: {exc if isinstance(exc, ValueError) else f'a result lacks {exc}'}",
              file=sys.stderr)
        return 2
    print(text)
    return 1 if ship_verdict(base["means"], new["means"]) else 0
