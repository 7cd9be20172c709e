"""Small images drawn with Pillow: shape scenes, charts of world statistics, signs, panels.

Every item is (images, question, answer, caption) with a short canonical answer: a number, a colour
word, a name, "left"/"right", "first"/"second", or "colour shape, colour shape" for panels. Only the
font that ships with Pillow is used, so drawings are the same on every machine with the same Pillow.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from tinygpt4.world.entities import World
from tinygpt4.world.vocab import indefinite

PALETTE = {"red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 80, 220), "yellow": (230, 190, 20),
           "purple": (140, 60, 180), "orange": (240, 130, 20)}
SHAPES = ("circle", "square", "triangle")
TASKS = ("count", "colour", "position", "chart_largest", "chart_value", "read_sign", "multi_compare", "panels")
CAPTION_TASKS = tuple(t for t in TASKS if t != "multi_compare")  # one image each, with a caption
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth"]
SIGN_WORDS = ("OPEN", "CLOSED", "EXIT", "STOP", "SALE", "PARK", "BANK", "HOTEL", "SCHOOL", "MARKET")
STATISTICS = [("how many tourists visited", "last year", "had the most"),
              ("how much rain fell in", "this spring", "got the most"),
              ("how many books were sold in", "in May", "sold the most"),
              ("how many trees were planted in", "this year", "planted the most")]
LINE_STATS = [("the price of bread in {c}", "price"), ("the number of ships in the harbour of {c}", "number"),
              ("the average rainfall in {c}", "rainfall")]


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    x: float  # centre, pixels
    y: float
    r: float

    def words(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass
class Item:
    task: str
    images: list[Image.Image]
    question: str
    answer: str
    caption: str
    reply: str = ""  # the assistant's reply in chat data, when it shows its working before the answer
    working: str = ""  # what that working must name on the way to the answer (the tallest bar: "bar 2")
    page_caption: str = ""  # how the pretraining text's picture pages describe it, when not as the caption

    def __post_init__(self):
        self.reply = self.reply or self.answer
        self.page_caption = self.page_caption or self.caption


@functools.lru_cache(maxsize=32)
def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


def _canvas(size: int, bg=(255, 255, 255)) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), bg)
    return img, ImageDraw.Draw(img)


def _draw_shape(d: ImageDraw.ImageDraw, s: Shape) -> None:
    fill = PALETTE[s.colour]
    box = [s.x - s.r, s.y - s.r, s.x + s.r, s.y + s.r]
    if s.kind == "circle":
        d.ellipse(box, fill=fill)
    elif s.kind == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(s.x, s.y - s.r), (s.x - s.r, s.y + s.r), (s.x + s.r, s.y + s.r)], fill=fill)


def draw_scene(shapes: list[Shape], size: int) -> Image.Image:
    img, d = _canvas(size)
    for s in shapes:
        _draw_shape(d, s)
    return img


def _place(rng: random.Random, specs: list[tuple[str, str]], size: int,
           xrange_for: dict[int, tuple[float, float]] | None = None) -> list[Shape]:
    """Non-overlapping shapes; xrange_for pins shape i's centre into a horizontal band."""
    for _ in range(200):
        out: list[Shape] = []
        for i, (kind, colour) in enumerate(specs):
            r = rng.uniform(size / 14, size / 9)
            lo, hi = (xrange_for or {}).get(i, (r + 1, size - r - 1))
            for _ in range(100):
                x, y = rng.uniform(max(lo, r + 1), min(hi, size - r - 1)), rng.uniform(r + 1, size - r - 1)
                if all((x - o.x) ** 2 + (y - o.y) ** 2 > (r + o.r + 2) ** 2 for o in out):
                    out.append(Shape(kind, colour, x, y, r))
                    break
            else:
                break
        if len(out) == len(specs):
            return out
    raise RuntimeError("could not place shapes")  # unreachable for at most 6 shapes


def _where(s: Shape, size: int) -> str:
    col = ["left", "centre", "right"][min(2, int(3 * s.x / size))]
    row = ["top", "middle", "bottom"][min(2, int(3 * s.y / size))]
    return "centre" if (row, col) == ("middle", "centre") else f"{row} {col}" if col != "centre" else row


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(shapes: list[Shape], size: int) -> str:
    n = len(shapes)
    parts = [f"{indefinite(s.words())} at the {_where(s, size)}" for s in sorted(shapes, key=lambda s: (s.x, s.y))]
    text = f"{NUMBER_WORDS[n].capitalize()} shape{'s' if n > 1 else ''}: {_listing(parts)}."
    if n == 2:
        a, b = sorted(shapes, key=lambda s: s.x)
        text += f" The {a.words()} is to the left of the {b.words()}."
    return text


def _specs(rng: random.Random, n: int, distinct_kinds: bool = False) -> list[tuple[str, str]]:
    kinds = rng.sample(SHAPES, n) if distinct_kinds else [rng.choice(SHAPES) for _ in range(n)]
    return [(k, rng.choice(sorted(PALETTE))) for k in kinds]


# --- one generator per task ------------------------------------------------------------------------
def count_item(rng, size, world):
    shapes = _place(rng, _specs(rng, rng.randint(1, 6)), size)
    return Item("count", [draw_scene(shapes, size)], "How many shapes are in the image?", str(len(shapes)),
                describe(shapes, size))


def colour_item(rng, size, world):
    shapes = _place(rng, _specs(rng, rng.randint(1, 3), distinct_kinds=True), size)
    target = rng.choice(shapes)
    return Item("colour", [draw_scene(shapes, size)], f"What colour is the {target.kind}?", target.colour,
                describe(shapes, size))


def position_item(rng, size, world):
    specs = _specs(rng, rng.randint(1, 3))
    while len({s for s in specs}) < len(specs):
        specs = _specs(rng, len(specs))
    side = rng.choice(["left", "right"])
    band = (0, size * 0.38) if side == "left" else (size * 0.62, size)
    shapes = _place(rng, specs, size, {0: band})
    t = shapes[0]
    return Item("position", [draw_scene(shapes, size)], f"Is the {t.words()} on the left or the right?", side,
                describe(shapes, size))


def _bars(values: list[int], size: int, vmax: int) -> Image.Image:
    img, d = _canvas(size)
    left, bottom, top = size * 0.08, size * 0.92, size * 0.08
    slot = (size * 0.9 - left) / len(values)
    d.line([(left, top), (left, bottom), (size * 0.96, bottom)], fill=(0, 0, 0))
    for i, v in enumerate(values):
        x0 = left + i * slot + slot * 0.2
        h = (bottom - top) * v / vmax
        d.rectangle([x0, bottom - h, x0 + slot * 0.6, bottom - 1], fill=PALETTE["blue"])
    return img


def chart_largest_item(rng, size, world):
    countries = rng.sample(world.by_kind["country"], rng.randint(3, min(4, len(world.by_kind["country"]))))
    values = [rng.randint(1, 8) for _ in countries]
    best = rng.randrange(len(values))
    values[best] = max(values) + rng.randint(2, 4)
    what, when, most = rng.choice(STATISTICS)
    names = [c.name["en"] for c in countries]
    # Only what the picture shows: the names are in the question, not on the chart. The bars are
    # numbered in the question, so the reply can find the tallest bar's name by its number.
    legend = _listing([f"bar {i + 1} is {n}" for i, n in enumerate(names)])
    q = f"The bars show {what} each country {when}, from left to right: {legend}. Which country {most}?"
    caption = (f"A bar chart with {NUMBER_WORDS[len(values)]} bars. Bar {best + 1}, the {ORDINALS[best]} from "
               "the left, is the tallest.")
    # "bar 2 is" again, word for word as in the question, so the name is found by copying what followed it
    reply = f"The tallest is bar {best + 1}, and bar {best + 1} is {names[best]}, so the answer is {names[best]}."
    return Item("chart_largest", [_bars(values, size, max(values))], q, names[best], caption, reply, f"bar {best + 1}")


def _line(values: list[int], size: int) -> Image.Image:
    img, d = _canvas(size)
    f = font(size // 7)
    left, right, bottom, top = size * 0.2, size * 0.95, size * 0.9, size * 0.1
    step = (bottom - top) / 5
    for v in range(1, 6):
        y = bottom - v * step
        d.line([(left, y), (right, y)], fill=(210, 210, 210))
        d.text((1, y - size // 14), str(v), fill=(0, 0, 0), font=f)
    d.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0))
    xs = [left + (right - left) * (i + 0.5) / len(values) for i in range(len(values))]
    pts = [(x, bottom - v * step) for x, v in zip(xs, values)]
    d.line(pts, fill=PALETTE["red"], width=max(1, size // 40))
    for x, y in pts:
        d.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=PALETTE["red"])
    return img


def chart_value_item(rng, size, world):
    values = [rng.randint(1, 5) for _ in range(5)]
    c = rng.choice(world.by_kind["country"]).name["en"]
    stat, noun = rng.choice(LINE_STATS)
    which = rng.choice(["first", "last"])
    v = values[0] if which == "first" else values[-1]
    q = f"The line shows {stat.format(c=c)} over five years. What was the {noun} in the {which} year?"
    caption = f"A line chart of five yearly values: {', '.join(map(str, values))}."
    return Item("chart_value", [_line(values, size)], q, str(v), caption)


def sign_words(world: World) -> list[str]:
    names = [e.name["en"].upper() for k in ("city", "country") for e in world.by_kind[k]]
    return sorted({w for w in names if len(w) <= 7}) + list(SIGN_WORDS)


def _sign(word: str, colour: str, size: int, rng: random.Random) -> Image.Image:
    img, d = _canvas(size, (235, 245, 255))
    fsize = size // 4
    while fsize > 6 and font(fsize).getbbox(word)[2] > size * 0.86:
        fsize -= 1
    f = font(fsize)
    x0, y0, x1, y1 = f.getbbox(word)
    w, h = x1 - x0, y1 - y0
    cx, cy = size / 2 + rng.uniform(-2, 2), size * 0.42 + rng.uniform(-3, 3)
    pad = size * 0.05
    d.rectangle([size / 2 - 1, cy, size / 2 + 1, size], fill=(90, 90, 90))
    d.rectangle([cx - w / 2 - pad, cy - h / 2 - pad, cx + w / 2 + pad, cy + h / 2 + pad], fill=PALETTE[colour])
    text = (0, 0, 0) if colour in ("yellow", "orange") else (255, 255, 255)
    d.text((cx - w / 2 - x0, cy - h / 2 - y0), word, fill=text, font=f)
    return img


def sign_image(word: str, rng: random.Random, size: int) -> Image.Image:
    """A sign in a random colour with the word printed on it (the safety data's signs name compounds)."""
    return _sign(word, rng.choice(sorted(PALETTE)), size, rng)


def read_sign_item(rng, size, world):
    """The sign is printed in capitals; the reply and caption write the word as text writes a name ("Bagu"),
    one token the decoder already knows instead of capital pieces (B·A·GU) it has rarely seen. The pretraining
    text's picture pages quote it as printed, as they always have (so the base model is unchanged)."""
    word = rng.choice(sign_words(world))
    colour = rng.choice(sorted(PALETTE))
    a = indefinite(colour).capitalize()
    return Item("read_sign", [_sign(word, colour, size, rng)], "What does the sign say?", word,
                f"{a} sign that says {word.title()}.", word.title(), page_caption=f"{a} sign that says {word}.")


def multi_compare_item(rng, size, world):
    a, b = rng.sample(range(1, 7), 2)
    imgs = [draw_scene(_place(rng, _specs(rng, n), size), size) for n in (a, b)]
    return Item("multi_compare", imgs, "Which image has more shapes, the first or the second?",
                "first" if a > b else "second", "")


def panels_item(rng, size, world):
    n = 2 if size < 96 else rng.choice([2, 4])
    img, d = _canvas(size)
    cells = [(0, 0, size, size)]
    if n == 2:
        cells = [(0, 0, size / 2, size), (size / 2, 0, size, size)]
    else:
        h = size / 2
        cells = [(0, 0, h, h), (h, 0, size, h), (0, h, h, size), (h, h, size, size)]
    shapes = []
    for x0, y0, x1, y1 in cells:
        k, c = rng.choice(SHAPES), rng.choice(sorted(PALETTE))
        r = min(x1 - x0, y1 - y0) * rng.uniform(0.25, 0.33)
        s = Shape(k, c, (x0 + x1) / 2 + rng.uniform(-2, 2), (y0 + y1) / 2 + rng.uniform(-4, 4), r)
        _draw_shape(d, s)
        shapes.append(s)
    for x0, y0, x1, y1 in cells:
        d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 0, 0))
    order = "from left to right" if n == 2 else "from left to right, top to bottom"
    answer = ", ".join(s.words() for s in shapes)
    return Item("panels", [img], f"Describe each panel {order}.", answer,
                f"{NUMBER_WORDS[n].capitalize()} panels: {_listing([indefinite(s.words()) for s in shapes])}.")


GENERATORS = {"count": count_item, "colour": colour_item, "position": position_item,
              "chart_largest": chart_largest_item, "chart_value": chart_value_item, "read_sign": read_sign_item,
              "multi_compare": multi_compare_item, "panels": panels_item}


def make_item(task: str, rng: random.Random, size: int, world: World) -> Item:
    return GENERATORS[task](rng, size, world)


def save_png(img: Image.Image, path) -> None:
    img.save(path, format="PNG", optimize=False, compress_level=6)
