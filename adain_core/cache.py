"""The one cache service: loaded engines and style cards, each in a bounded least-recently-used map keyed by file
identity (a file replaced in place is read again, an unchanged one never is). Used by the CLI, the worker, the
ComfyUI nodes and the Blender add-on instead of caches of their own."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Callable, Generic, TypeVar

from .cards import StyleCard, mix
from .engine import Engine, load
from .errors import CardError, ImageLoadError
from .fingerprint import FileIdentity, file_identity
from .vocabulary import BACKDROP_MODES, is_card_path

__all__ = ["LRU", "EngineCache", "StyleCache", "model_key"]

V = TypeVar("V")


class LRU(Generic[V]):
    """A thread-safe map that keeps the ``capacity`` most recently used entries.

    Example:
        >>> lru = LRU(2)
        >>> lru.put("a", 1); lru.put("b", 2); _ = lru.get("a"); lru.put("c", 3)
        >>> sorted(lru.keys())
        ['a', 'c']
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"LRU capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value for ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value``, dropping the least recently used entries beyond the capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def pop(self, key: Hashable) -> V | None:
        with self._lock:
            return self._items.pop(key, None)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def model_key(model: str | os.PathLike[str]) -> tuple[Hashable, ...]:
    """How a model is identified: the file identity of a model file, else its name (``default``, ``original``)."""
    return (file_identity(model),) if os.path.isfile(model) else (os.fspath(model),)


class EngineCache:
    """Loaded engines by model (file identity or name), device and precision; at most ``capacity`` at once."""

    def __init__(self, capacity: int = 2, loader: Callable[..., Engine] = load) -> None:
        self._engines: LRU[Engine] = LRU(capacity)
        self._loader = loader
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, model: str | os.PathLike[str] = "default", device: str = "auto", precision: str = "auto", *,
            before_load: Callable[[], None] | None = None) -> tuple[Engine, bool]:
        """The engine for ``model`` and whether it came from the cache; ``before_load`` is called on a miss (to tell
        a user, or to cancel by raising).

        Raises:
            ModelError: as :func:`adain_core.load`.
        """
        key = (*model_key(model), str(device), precision)
        with self._lock:  # one load at a time: two models at once could exhaust memory
            engine = self._engines.get(key)
            if engine is not None:
                return engine, True
            if before_load is not None:
                before_load()
            engine = self._loader(model, device=device, precision=precision)
            self.loads += 1
            self._engines.put(key, engine)
            return engine, False

    def keys(self) -> list[Hashable]:
        return self._engines.keys()

    def __len__(self) -> int:
        return len(self._engines)


class StyleCache:
    """Style cards by style file identity, encoder and style size; at most ``capacity`` at once.

    A path ending in ``.safetensors`` is a saved card (loaded and checked against the engine's encoder); any other
    path is a style image, encoded by the engine at ``style_size``.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._cards: LRU[StyleCard] = LRU(capacity)

    def card(self, engine: Engine, path: str | os.PathLike[str], style_size: int | None = 512, *,
             backdrop: str = BACKDROP_MODES[0],
             before_encode: Callable[[], None] | None = None) -> tuple[StyleCard, bool]:
        """The card for one style file and whether it came from the cache; ``before_encode`` is called on a miss.
        ``style_size`` and ``backdrop`` are :meth:`Engine.encode_style`'s (a card file carries its own).

        Raises:
            ImageLoadError / CardError: the image or card file is missing or unreadable (the message names it), or
            the card belongs to another encoder.
        """
        card_file = is_card_path(os.fspath(path))
        try:
            identity: FileIdentity = file_identity(path)
        except OSError:
            if card_file:
                raise CardError(f"{os.fspath(path)}: style card not found") from None
            raise ImageLoadError(f"{os.fspath(path)}: no such image file") from None
        key = (engine.encoder_id, identity, None if card_file else (style_size, backdrop))
        card = self._cards.get(key)
        if card is not None:
            return card, True
        if before_encode is not None:
            before_encode()
        if card_file:
            card = StyleCard.load(Path(path), engine.encoder_id)
        else:
            card = engine.encode_style(path, size=style_size, backdrop=backdrop)
        self._cards.put(key, card)
        return card, False

    def mixed(self, engine: Engine, styles: Sequence[tuple[str | os.PathLike[str], float]],
              style_size: int | None = 512, *, backdrop: str = BACKDROP_MODES[0],
              before_encode: Callable[[], None] | None = None) -> tuple[StyleCard, list[bool]]:
        """One card for weighted style files (a single style as is, several mixed by weight), and per style whether
        it came from the cache."""
        found = [self.card(engine, path, style_size, backdrop=backdrop, before_encode=before_encode)
                 for path, _ in styles]
        cards = [card for card, _ in found]
        card = cards[0] if len(cards) == 1 else mix(cards, [weight for _, weight in styles])
        return card, [hit for _, hit in found]

    def __len__(self) -> int:
        return len(self._cards)
