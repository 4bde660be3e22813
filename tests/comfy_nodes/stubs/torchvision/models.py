"""Empty torchvision.models for the test-only stub."""


def __getattr__(name: str):
    raise AttributeError(f"torchvision.models test stub has no attribute {name!r}")
