"""Empty torchvision.transforms for the test-only stub."""


def __getattr__(name: str):
    raise AttributeError(f"torchvision.transforms test stub has no attribute {name!r}")
