"""The items people vote for, and the one whose vote always fails.

Emoji serves this catalogue; voting accepts votes only for its shortcodes (so its tally stays
bounded whatever clients send); vote-bot picks from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Item:
    shortcode: str
    unicode: str


# Linkerd users know emojivoto's doughnut as the broken vote; the demo keeps that behaviour
# so the same walkthrough ("why is voting's success rate low?") works here.
FAILING_SHORTCODE = ":doughnut:"

CATALOG: tuple[Item, ...] = (
    Item(":spider_web:", "\N{SPIDER WEB}\N{VARIATION SELECTOR-16}"),
    Item(":joy:", "\N{FACE WITH TEARS OF JOY}"),
    Item(":sunglasses:", "\N{SMILING FACE WITH SUNGLASSES}"),
    Item(":doughnut:", "\N{DOUGHNUT}"),
    Item(":rocket:", "\N{ROCKET}"),
    Item(":tada:", "\N{PARTY POPPER}"),
    Item(":pizza:", "\N{SLICE OF PIZZA}"),
    Item(":taco:", "\N{TACO}"),
    Item(":cat:", "\N{CAT FACE}"),
    Item(":dog:", "\N{DOG FACE}"),
    Item(":unicorn:", "\N{UNICORN FACE}"),
    Item(":octopus:", "\N{OCTOPUS}"),
    Item(":cactus:", "\N{CACTUS}"),
    Item(":sunflower:", "\N{SUNFLOWER}"),
    Item(":rainbow:", "\N{RAINBOW}"),
    Item(":zap:", "\N{HIGH VOLTAGE SIGN}"),
    Item(":fire:", "\N{FIRE}"),
    Item(":star2:", "\N{GLOWING STAR}"),
    Item(":coffee:", "\N{HOT BEVERAGE}"),
    Item(":avocado:", "\N{AVOCADO}"),
    Item(":hedgehog:", "\N{HEDGEHOG}"),
    Item(":sloth:", "\N{SLOTH}"),
    Item(":crab:", "\N{CRAB}"),
    Item(":ghost:", "\N{GHOST}"),
)

_BY_SHORTCODE = {item.shortcode: item for item in CATALOG}


def find(shortcode: str) -> Item | None:
    return _BY_SHORTCODE.get(shortcode)
