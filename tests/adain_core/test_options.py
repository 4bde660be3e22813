"""StylizeOptions: the one value object for a stylisation's settings; validated once, with messages naming the
value."""

from __future__ import annotations

import pytest

from adain_core import StylizeOptions, ValueRangeError


def test_defaults_and_keywords_override_a_value_object():
    base = StylizeOptions(alpha=0.5, color="luminance")
    assert StylizeOptions.of() == StylizeOptions()
    assert StylizeOptions.of(base) is base
    changed = StylizeOptions.of(base, tile="512")
    assert (changed.alpha, changed.color, changed.tile) == (0.5, "luminance", 512)
    assert base.tile == "auto"  # frozen: the original is unchanged


@pytest.mark.parametrize("fields, message", [
    ({"alpha": -0.1}, "alpha"), ({"alpha": float("nan")}, "alpha"), ({"color": "sepia"}, "colour mode"),
    ({"tile": "huge"}, "tile"), ({"tile": 32}, "at least 64"), ({"style_size": 8}, "style size"),
])
def test_bad_values_name_themselves(fields, message):
    with pytest.raises(ValueRangeError, match=message):
        StylizeOptions(**fields)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="alhpa"):
        StylizeOptions.of(alhpa=1.0)


def test_engine_takes_options_or_keywords(random_engine, card_a, make_image):
    content = make_image(24, 32, seed=5)
    via_object = random_engine.stylize(content, card_a, StylizeOptions(alpha=0.6, color="luminance"))
    via_keywords = random_engine.stylize(content, card_a, alpha=0.6, color="luminance")
    assert via_object.tobytes() == via_keywords.tobytes()
