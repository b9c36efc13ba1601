"""The shared text normalisation: the batch token stream (compiled, and numpy's) equals the per-string
definition."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from wit.text.normalize import collapse_whitespace, spaced, token_stream

WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]


def _reference(texts: list[str]) -> tuple[list[str], list[bool]]:
    """Tokens of every text and, per neighbouring pair, whether they are one space apart."""
    tokens: list[str] = []
    joined: list[bool] = []
    for text in texts:
        parts = spaced(collapse_whitespace(text)).split(" ")
        idx = [i for i, p in enumerate(parts) if p]
        if tokens and idx:
            joined.append(False)  # never across two texts
        tokens += [parts[i] for i in idx]
        joined += [b == a + 1 for a, b in zip(idx, idx[1:])]
    return tokens, joined


def test_collapse_whitespace_handles_every_unicode_space():
    assert collapse_whitespace("".join(WHITESPACE) + "a" + "\u3000\x1c" + "b ") == "a b"
    assert collapse_whitespace("a\u200bb") == "a\u200bb"  # zero-width space is not white space


@pytest.fixture(params=["compiled", "numpy"])
def tokenizer(request, monkeypatch):
    """Each of token_stream's two paths: the C extension's one pass, and numpy's (without the extension)."""
    from wit.text import normalize

    if request.param == "compiled" and normalize._compiled_tokens() is None:
        pytest.skip("wit.queries._wikiclean is not built here (make setup builds it)")
    if request.param == "numpy":
        monkeypatch.setattr(normalize, "_compiled_tokens", lambda: None)
    return request.param


@pytest.mark.parametrize("seed", [0, 1])
def test_token_stream_equals_per_string_definition(seed, tokenizer):
    rng = random.Random(seed)
    alphabet = (list("ab,.;:?!`'-é中\u00c2\u0100\u2080\ufeff\u200b") + WHITESPACE + [" "] * 8)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(20_000)]
    texts += ["", " ", "a", ",", "a,b", "a, b", "a ,b", ",,", "x\u00a0y", "\u3000a\u3000"]
    arr = pa.array(texts, pa.string())
    for sample in (arr, arr.slice(7, 5000), arr.cast(pa.large_string())):
        tokens, joined = token_stream(sample)
        want_tokens, want_joined = _reference(sample.to_pylist())
        assert tokens.to_pylist() == want_tokens
        assert joined.tolist() == want_joined


def test_token_stream_bigram_rules(tokenizer):
    tokens, joined = token_stream(pa.array(["New York, USA", "is big"]))
    assert tokens.to_pylist() == ["New", "York", ",", "USA", "is", "big"]
    # "York ," is one space apart in " New York ,  USA "; ", USA" is not; nor "USA is" (two texts).
    assert joined.tolist() == [True, True, False, False, True]


def test_token_stream_of_no_texts(tokenizer):
    """An empty array, also one whose offsets buffer is empty (Arrow allows it), has no tokens."""
    for arr in (pa.array([], pa.string()),
                pa.LargeStringArray.from_buffers(0, pa.py_buffer(b""), pa.py_buffer(b""))):
        tokens, joined = token_stream(arr)
        assert tokens.to_pylist() == [] and joined.tolist() == []


def test_compiled_tokens_check_their_offsets():
    import numpy as np

    from wit.text import normalize

    compiled = normalize._compiled_tokens()
    if compiled is None:
        pytest.skip("wit.queries._wikiclean is not built here")
    with pytest.raises(ValueError):
        compiled(b"abc", np.array([0, 5], np.int64))  # past the data
    with pytest.raises(ValueError):
        compiled(b"abc", np.array([2, 1], np.int64))  # not ascending
    with pytest.raises(ValueError):
        compiled(b"abc", b"\x00" * 12)  # not whole int64 values
    chars, offsets, joined = compiled(b"a b", np.array([0, 3], np.int64))
    assert chars == b"ab" and np.frombuffer(offsets, np.int64).tolist() == [0, 1, 2] and joined == b"\x01"


@pytest.mark.parametrize("seed", [0, 1])
def test_token_dictionary_is_token_stream_dictionary_encoded(seed, tokenizer):
    """Distinct tokens in order of first sight (as Arrow's dictionary_encode), a code per token,
    the same pairs, and (compiled) each word's vocab.string_hashes; thousands of distinct words
    make the C hash table grow several times."""
    import numpy as np
    import pyarrow.compute as pc

    from wit.queries.vocab import string_hashes
    from wit.text.normalize import token_dictionary

    rng = random.Random(seed)
    alphabet = list("abcdefé中") * 3 + list(",. ") + WHITESPACE[:6]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(20_000)]
    arr = pa.array(texts, pa.string())
    for sample in (arr, arr.slice(11, 7000), pa.array([], pa.string()),
                   pa.LargeStringArray.from_buffers(0, pa.py_buffer(b""), pa.py_buffer(b""))):
        words, codes, joined, hashes = token_dictionary(sample)
        tokens, want_joined = token_stream(sample)
        assert codes.dtype == np.int32 and words.type == pa.large_string()
        assert words.to_pylist() == pc.unique(tokens).to_pylist()
        assert words.take(pa.array(codes)).to_pylist() == tokens.to_pylist()
        assert joined.tolist() == want_joined.tolist()
        if hashes is not None:
            assert hashes.tolist() == string_hashes(words).tolist()
        elif tokenizer == "compiled":
            assert not len(sample)
    assert len(token_dictionary(arr)[0]) > 10_000
