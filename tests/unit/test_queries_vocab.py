"""The counting task's vocabulary: exact dense ids, whatever the hash does."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from wit.queries.vocab import Vocabulary, string_hashes


def _batches(seed: int, n: int = 40):
    rng = random.Random(seed)
    alphabet = ["a", "b", "é", "日", " ", "\x00", "z" * 40]
    for _ in range(n):
        words = {"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 400))}
        yield sorted(words, key=lambda _: rng.random())


def _check(vocab: Vocabulary, seed: int) -> None:
    expected: dict[str, int] = {}
    for words in _batches(seed):
        got = vocab.ids(pa.array(words, pa.large_string()))
        for w in words:
            expected.setdefault(w, len(expected))
        assert got.tolist() == [expected[w] for w in words]
    assert len(vocab) == len(expected)
    assert vocab.words().to_pylist() == list(expected)  # id order = order of first sight
    # Each word's hash, kept for the spill buckets, is the hash of that word.
    assert vocab.hashes().tolist() == np.asarray(vocab.hash_fn(vocab.words())).astype(np.uint64).tolist()


def test_ids_are_dense_and_stable_across_batches():
    vocab = Vocabulary()
    _check(vocab, 1)
    assert len(vocab) > 2000  # the growable buffers were resized several times
    assert not vocab.others  # no 64-bit collision among these words


def test_ids_stay_exact_when_hashes_collide():
    """With a hash of three values nearly every word collides: the dict keeps the ids exact."""
    vocab = Vocabulary(hash_fn=lambda a: string_hashes(a) % np.uint64(3))
    _check(vocab, 2)
    assert len(vocab.others) == len(vocab) - 3


def test_string_hashes_depend_on_the_string_only():
    words = ["", "a", "a\x00", "\x00a", "ab", "ba", "é", "日本", "x" * 100]
    h = string_hashes(pa.array(words, pa.large_string()))
    assert len(set(h.tolist())) == len(words)
    # The same strings at another position of another array (a slice with an offset) hash alike.
    arr = pa.array(["pad", "more"] + words, pa.string()).slice(2)
    assert string_hashes(arr).tolist() == h.tolist()


def test_signed_or_constant_hashes_still_give_exact_ids():
    vocab = Vocabulary(hash_fn=lambda a: np.full(len(a), -1, np.int64))
    got = [vocab.ids(pa.array([w], pa.large_string())).tolist() for w in ["a", "b", "b", "a", "c"]]
    assert got == [[0], [1], [1], [0], [2]]


def test_long_words_hash_like_short_ones():
    long = "x" * 100_000
    h = string_hashes(pa.array([long, long + "y", "x"], pa.large_string()))
    assert len(set(h.tolist())) == 3
    assert string_hashes(pa.array([long], pa.large_string())).tolist() == h[:1].tolist()
