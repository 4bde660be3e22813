"""Test-only stand-in for torchvision (the PyPI build cannot import beside torch 2.13 on CI machines).

ComfyUI imports torchvision at start-up only to define classes; empty ``transforms`` and ``models``
submodules satisfy it. Any other attribute raises AttributeError, so code that really needs torchvision
fails to import (ComfyUI logs it and carries on). Never shipped: the tests put ``stubs/`` on PYTHONPATH.
"""

from . import models, transforms  # noqa: F401

__version__ = "0.0.0+adain-test-stub"


def __getattr__(name: str):
    raise AttributeError(f"torchvision test stub has no attribute {name!r}")
