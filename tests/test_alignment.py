"""Word alignment and partial-word negatives (augment.word_position, augment.partial_word_*): where a
word's speech lands in the training window, that a window holding only part of a keyword is cut
at an edge and trained as _unknown_, and that both are seeded and deterministic."""
import types

import numpy as np
import pytest

from kws.trainer import augment as aug
from kws.trainer import dataset as ds
from kws.trainer.config import ConfigError, load_config
from kws.trainer.features import is_partial_key, partial_items, training_features

SR = 16000
N = SR


def _word(start, end, n=N, seed=0):
    """A clip of silence with noise-like 'speech' in [start, end)."""
    clip = np.zeros(n, np.float32)
    clip[start:end] = np.random.default_rng(seed).standard_normal(end - start).astype(np.float32) * 0.3
    return clip


def _voiced(x):
    nz = np.flatnonzero(np.abs(x) > 1e-6)
    return (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)


def test_speech_bounds_find_the_word_on_10_ms_frames():
    assert aug.speech_bounds(_word(4000, 11000), SR) == (4000, 11040)
    assert aug.speech_bounds(np.zeros(N, np.float32), SR)[0] == 0  # silence: no crash


@pytest.mark.parametrize("start,end", [(1000, 6000), (4000, 11000), (9000, 15800)])
def test_end_position_puts_the_speech_end_near_the_newest_edge(start, end):
    rng = np.random.default_rng(1)
    margin, jitter = 2400, 1600
    for _ in range(20):
        out = aug.place_word(_word(start, end), "end", jitter, margin, rng, SR)
        s0, s1 = _voiced(out)
        assert out.shape == (N,) and out.dtype == np.float32
        assert N - margin - jitter - 160 <= s1 <= N - margin + jitter + 160
        assert s1 - s0 == end - start  # the whole word, unchanged


def test_centre_position_centres_the_speech_and_never_cuts_it():
    rng = np.random.default_rng(2)
    for _ in range(20):
        s0, s1 = _voiced(aug.place_word(_word(12000, 15000), "centre", 800, 0, rng, SR))
        assert abs((s0 + s1) / 2 - N / 2) <= 800 + 160
    # a word longer than the jitter allows is clamped inside the window, never cut
    for _ in range(20):
        s0, s1 = _voiced(aug.place_word(_word(500, 15500), "end", 1600, 2400, rng, SR))
        assert s0 >= 0 and s1 <= N and s1 - s0 == 15000


def test_partial_word_keeps_the_drawn_share_and_is_cut_at_an_edge():
    rng = np.random.default_rng(3)
    start, end = 5000, 12000
    sides = set()
    for _ in range(60):
        out = aug.partial_word(_word(start, end), (0.1, 0.6), rng, SR)
        s0, s1 = _voiced(out)
        share = (s1 - s0) / (end - start)
        assert 0.1 - 0.01 <= share <= 0.6 + 0.01
        assert s0 == 0 or s1 == N  # the window's oldest or newest edge cuts the word
        sides.add("oldest" if s0 == 0 else "newest")
    assert sides == {"oldest", "newest"}  # both kinds of cut, as a sliding window shows them


def test_partial_items_are_unknown_and_each_epoch_cuts_keywords_deterministically():
    rng = np.random.default_rng(4)
    clips, words = {}, []
    for i in range(40):
        path = f"w{i}.wav"
        a = int(rng.integers(2000, 6000))
        clips[path] = (_word(a, a + 6000, seed=i) * 32767).astype(np.int16)
        words.append(ds.Item(path, "yes" if i % 2 else "no", f"spk{i % 5}"))
    partial = partial_items(30)
    assert all(i.label == ds.UNKNOWN_LABEL and is_partial_key(i.path) for i in partial)
    cfg = load_config(None, ["augment.word_position=end", "augment.partial_word_percentage=50"])
    items = words + partial
    pool = [i.path for i in words]
    a = training_features(items, clips, cfg, (), [], seed=[7, 0], workers=1, keyword_pool=pool)
    b = training_features(items, clips, cfg, (), [], seed=[7, 0], workers=3, keyword_pool=pool)
    c = training_features(items, clips, cfg, (), [], seed=[7, 1], workers=1, keyword_pool=pool)
    assert a.shape == (len(items), *cfg.features.input_shape) and np.all(np.isfinite(a))
    assert np.array_equal(a, b) and not np.allclose(a, c)
    with pytest.raises(ValueError, match="keyword_pool"):
        training_features(items, clips, cfg, (), [], seed=[7, 0], workers=1)


def test_training_adds_the_configured_share_of_partial_words_as_unknown(tmp_path):
    from kws.trainer.train import negative_items

    words = [ds.Item(f"w{i}.wav", "yes", "s") for i in range(40)]
    index = types.SimpleNamespace(splits={"training": words + [ds.Item(None, "_silence_")]},
                                  labels=["_silence_", "_unknown_", "yes"])
    run = types.SimpleNamespace(path=tmp_path)
    for pct, n in ((0, 0), (25, 10), (50, 20)):
        cfg = load_config(None, [f"augment.partial_word_percentage={pct}"])
        items = negative_items(cfg, run, index, {}, None, lambda msg: None)
        assert len(items) == n and all(i.label == ds.UNKNOWN_LABEL and is_partial_key(i.path) for i in items)


@pytest.mark.parametrize("setting", ["augment.word_position=middle", "augment.partial_word_visible=[0.5,0.2]",
                                     "augment.partial_word_visible=[0,0.5]", "augment.partial_word_percentage=-1",
                                     "augment.word_end_margin_ms=-5"])
def test_bad_alignment_settings_are_errors_naming_the_key(setting):
    with pytest.raises(ConfigError, match=setting.split("=")[0].split(".")[1]):
        load_config(None, [setting])


def test_anywhere_places_the_whole_word_at_every_place_it_fits():
    rng = np.random.default_rng(5)
    start, end = 6000, 11000  # a 5000-sample word: it fits at 11001 places in a 16000-sample window
    firsts = []
    for _ in range(400):
        s0, s1 = _voiced(aug.place_word(_word(start, end), "anywhere", 1600, 2400, rng, SR))
        assert 0 <= s0 and s1 <= N and s1 - s0 == end - start  # never cut
        firsts.append(s0)
    # against the oldest edge and against the newest edge, and spread between (uniform: quartiles
    # near 2750 / 5500 / 8250)
    assert min(firsts) < 300 and max(firsts) > N - (end - start) - 300
    assert np.allclose(np.percentile(firsts, [25, 50, 75]), [2750, 5500, 8250], atol=900)


def test_partial_words_are_cut_from_unknown_words_too_when_asked():
    from kws.trainer.train import partial_word_pool

    words = [ds.Item("yes1.wav", "yes", "a"), ds.Item("no1.wav", "no", "b"), ds.Item("zero1.wav", "_unknown_", "c"),
             ds.Item(None, "_silence_")]
    index = types.SimpleNamespace(splits={"training": words}, labels=["_silence_", "_unknown_", "yes", "no"])
    unknown = ["zero1.wav", "five2.wav"]
    assert partial_word_pool(load_config(None, []), index, unknown) == ["yes1.wav", "no1.wav"]
    cfg = load_config(None, ["augment.partial_word_unknowns=true"])
    assert partial_word_pool(cfg, index, unknown) == ["yes1.wav", "no1.wav", "zero1.wav", "five2.wav"]
