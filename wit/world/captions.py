"""Alt texts for the mini-web: templates naming the concept, plus noise, non-English and empty alts."""

from __future__ import annotations

import random

from wit.world.concepts import with_article

TEMPLATES = (
    "a photo of {a}",
    "{A} on a {bg} background.",
    "{a}",
    "{c}",
    "an illustration of {a}",
    "close-up of {a}, {w} px wide",
    "My drawing: {c}!",
    "the {c} icon",
    "{c} clip art",
    "A big {c} in the middle of the picture",
    "{C} (free image)",
    "picture of {a} for kids",
)
PAIR_TEMPLATES = ("{a} and {b}", "a photo of {a} next to {b}", "{A} with {b}.")
BACKGROUND_WORDS = {"plain": "plain", "gradient": "gradient", "striped": "striped", "speckled": "speckled"}
NOISE = ("click here", "IMG_{n}.JPG", "logo", "spacer", "banner ad", "thumbnail", "Home", "photo", "image {n}",
         "DSC{n}", "see more", "Read more >>")
FOREIGN = ("un cercle rouge sur fond blanc", "ein Bild von einem Haus", "una estrella amarilla", "赤い丸の写真",
           "красный круг", "árvore verde no jardim", "un pesce arancione", "een blauwe auto", "黄色い星",
           "una casa con tejado rojo", "Sonne am Himmel", "bateau sur la mer")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def concept_caption(concepts: list[str], rng: random.Random, background: str, width: int) -> str:
    """An English alt text naming every concept of the image."""
    if len(concepts) >= 2:
        a, b = with_article(concepts[0]), with_article(concepts[1])
        return rng.choice(PAIR_TEMPLATES).format(a=a, b=b, A=_cap(a))
    c = concepts[0]
    a = with_article(c)
    return rng.choice(TEMPLATES).format(a=a, A=_cap(a), c=c, C=_cap(c), bg=BACKGROUND_WORDS[background], w=width)


def noise_caption(rng: random.Random) -> str:
    return rng.choice(NOISE).format(n=rng.randint(1000, 9999))


def foreign_caption(rng: random.Random) -> str:
    return rng.choice(FOREIGN)
