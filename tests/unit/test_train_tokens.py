"""The fast caption tokenizer gives open_clip's token ids exactly, for any text."""

from __future__ import annotations

import pickle
import random
import string

import open_clip
import torch

from wit.train import model  # noqa: F401  (registers wit's model configs)
from wit.train.tokens import CaptionTokenizer, fast_tokenizer

TRICKY = [
    "a photo of a red circle", "Tom &amp; Jerry &lt;3", "  Hello\tWORLD\n\r", "", "<start_of_text> hi",
    "x" * 400, "don't stop 'til 123,456.7!!", "Caf\u00e9 \u201cquoted\u201d \ufb01ne", "\u00e2\u0080\u0099 mojibake",
    "tab\x0bvertical\x0cfeed\x1bescape\x00nul", "emoji \U0001F600 and \u4e2d\u6587", "UPPER lower MiXeD 42nd",
]


def test_same_ids_as_open_clip():
    base = open_clip.get_tokenizer("wit-vit-micro")
    fast = fast_tokenizer(base)
    assert isinstance(fast, CaptionTokenizer)
    rng = random.Random(0)
    alphabet = string.printable + "\u00e9\u00fc\u20ac\u201c\ufb01&;#<>\x0b\x0c\x1b\x00"
    texts = TRICKY + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))) for _ in range(1500)]
    expected = base(texts)
    assert torch.equal(fast(texts), expected)
    assert torch.equal(fast(texts), expected)  # again, from the word cache
    assert torch.equal(fast(texts[0]), base(texts[0]))
    assert torch.equal(fast(texts[:5], context_length=77), base(texts[:5], context_length=77))
    assert torch.equal(pickle.loads(pickle.dumps(fast))(texts[:50]), expected[:50])


def test_other_tokenizers_are_left_alone():
    hf_like = open_clip.tokenizer.SimpleTokenizer(context_length=16, clean="canonicalize")
    assert fast_tokenizer(hf_like) is hf_like
    assert fast_tokenizer(str.split) is str.split
