"""The augmentation library: each step does what its name says (measured on real signals), the
training features are deterministic per (seed, epoch) whatever the number of workers, and the
vocal-tract warp never reaches the device frontend."""
import dataclasses
import re

import numpy as np
import pytest
import soundfile as sf

from kws.edge.audio import write_wav
from kws.edge.frontend import Frontend, FrontendConfig, mel_matrix
from kws.trainer import augment as aug
from kws.trainer import dataset as ds
from kws.trainer.config import AugmentConfig, ConfigError, load_config
from kws.trainer.features import WarpedFrontend, training_features

SR = 16000


def _tone(freq, n=SR, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def _peak_hz(x):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / SR)[int(np.argmax(spec))]


def _rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def test_speed_perturbation_moves_pitch_and_keeps_length():
    out = aug.speed_perturb(_tone(1000.0), 1.1, SR)
    assert out.shape == (SR,) and out.dtype == np.float32
    assert _peak_hz(out[2000:-2000]) == pytest.approx(1100.0, abs=5)
    assert _peak_hz(aug.speed_perturb(_tone(1000.0), 0.9, SR)[2000:-2000]) == pytest.approx(900.0, abs=5)
    # a short word played slower stays centred in the clip
    word = np.zeros(SR, np.float32)
    word[7000:9000] = _tone(500.0, 2000)
    slow = aug.speed_perturb(word, 0.8, SR)
    active = np.flatnonzero(np.abs(slow) > 0.01)
    assert abs((active[0] + active[-1]) / 2 - SR / 2) < 100
    assert active[-1] - active[0] == pytest.approx(2000 / 0.8, rel=0.02)


def test_background_is_mixed_at_the_requested_snr():
    rng = np.random.default_rng(0)
    speech = _tone(440.0, amp=0.02)
    noise = aug.colored_noise("pink", SR, rng)
    for snr in (0.0, 10.0, 20.0):
        mixed = aug.mix_at_snr(speech, noise, snr)
        assert 20 * np.log10(aug.active_rms(speech) / _rms(mixed - speech)) == pytest.approx(snr, abs=0.01)


def test_band_limit_passes_the_phone_band_and_cuts_outside():
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    response = aug.band_curve(freqs, 300.0, 3400.0)
    # 4th-order edges: 100 Hz is 1.6 octaves below 300 Hz (-38 dB), 6 kHz 0.8 above 3.4 kHz (-20 dB)
    for f, lo, hi in ((100.0, 0.0, 0.015), (1000.0, 0.98, 1.0), (6000.0, 0.09, 0.11)):
        out = aug.apply_response(_tone(f), response)
        assert lo <= _rms(out) / _rms(_tone(f)) <= hi, f


def test_random_eq_hits_its_control_gains():
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    gains = [6.0, -6.0, 3.0, 0.0, -3.0, 6.0]
    curve = aug.eq_curve(freqs, gains)
    for f, g in zip(aug.EQ_POINTS_HZ, gains):
        assert 20 * np.log10(curve[int(f)]) == pytest.approx(g, abs=0.05)


def test_generated_room_has_its_direct_to_reverberant_ratio_and_decay():
    rng = np.random.default_rng(1)
    ir = aug.room_impulse_response(0.5, SR, rng, direct_gain=10 ** (6 / 20))
    assert np.sum(ir ** 2) == pytest.approx(1.0, rel=1e-4)
    assert 10 * np.log10(ir[0] ** 2 / np.sum(ir[1:] ** 2)) == pytest.approx(6.0, abs=0.01)
    tail = ir[1:] ** 2
    early, late = tail[SR // 20:SR // 10].mean(), tail[int(0.4 * SR):int(0.45 * SR)].mean()
    # -60 dB per RT60 = -120 dB/s: 0.35 s between the windows is about -42 dB
    assert 10 * np.log10(late / early) == pytest.approx(-42, abs=4)


def test_recorded_rirs_load_from_a_folder_and_bad_files_are_listed(tmp_path):
    """Hidden files and folders and __MACOSX/ are passed by, as by every kws tool: a folder unzipped
    from a Mac read each ._ companion as a broken impulse response and __MACOSX/'s copies as rooms."""
    ir = np.zeros(SR // 2, np.float32)
    ir[400] = 1.0
    ir[800:] = 0.05 * np.exp(-np.arange(SR // 2 - 800) / 800.0)
    write_wav(tmp_path / "rirs" / "hall.wav", ir, SR)
    write_wav(tmp_path / "rirs" / "__MACOSX" / "hall.wav", ir, SR)
    write_wav(tmp_path / "rirs" / ".Trashes" / "old.wav", ir, SR)
    (tmp_path / "rirs" / "._hall.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    (tmp_path / "rirs" / "broken.wav").write_bytes(b"RIFF0000WAVE")
    rirs, skipped = aug.load_rirs(tmp_path / "rirs", SR)
    assert len(rirs) == 1 and [p.endswith("broken.wav") for p, _ in skipped] == [True]
    assert np.argmax(np.abs(rirs[0])) == 0  # starts at the direct path: no delay of the word
    assert np.sum(rirs[0].astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(FileNotFoundError):
        aug.load_rirs(tmp_path / "none", SR)


OPUS_RATE = 48000  # the rates Opus takes top out here; libsndfile writes it at this one


@pytest.mark.skipif("OPUS" not in sf.available_subtypes("OGG"),
                    reason=f"this libsndfile ({sf.__libsndfile_version__}) cannot write OGG/Opus")
def test_recorded_rirs_read_opus_files_as_every_kws_input_does(tmp_path):
    """augment.rir_dir listed its own suffixes without .opus: a folder of Opus impulse responses (read
    by kws-train, kws-predict and every other input) was 'no readable impulse response' and refused."""
    ir = np.zeros(OPUS_RATE // 4, np.float32)
    ir[1200] = 0.8
    ir[2400:] = 0.05 * np.exp(-np.arange(OPUS_RATE // 4 - 2400) / 2400.0)
    (tmp_path / "rirs").mkdir()
    sf.write(tmp_path / "rirs" / "hall.opus", ir, OPUS_RATE, format="OGG", subtype="OPUS")
    rirs, skipped = aug.load_rirs(tmp_path / "rirs", SR)
    assert skipped == [] and len(rirs) == 1
    assert np.sum(rirs[0].astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-3)
    assert np.argmax(np.abs(rirs[0])) < SR // 1000  # starts at the direct path (Opus smears it by a few samples)


def test_input_level_never_amplifies_past_full_scale():
    loud = _tone(300.0, amp=0.9)
    assert np.max(np.abs(aug.set_gain_db(loud, 20.0))) == pytest.approx(1.0, abs=1e-6)
    quiet = _tone(300.0, amp=0.001)
    assert _rms(aug.set_gain_db(quiet, 20.0)) / _rms(quiet) == pytest.approx(10.0, rel=1e-4)
    assert _rms(aug.set_gain_db(quiet, -20.0)) / _rms(quiet) == pytest.approx(0.1, rel=1e-4)


def test_vtlp_warp_moves_formants_but_not_the_device_frontend():
    cfg = FrontendConfig(feature_type="log_mel", num_features=40)
    plain = mel_matrix(cfg)
    assert np.array_equal(mel_matrix(cfg, 1.0), plain)
    fe = Frontend(cfg)
    power = fe.power_spectrum(fe.frame(_tone(1000.0)))
    peak = {w: int(np.argmax((power @ mel_matrix(cfg, w)).mean(axis=0))) for w in (0.9, 1.0, 1.1)}
    assert peak[0.9] < peak[1.0] < peak[1.1]  # a longer vocal tract (warp < 1) sounds lower


def _cfg(**augment):
    return load_config(None, [f"augment.{k}={v}" for k, v in augment.items()])


def _items_and_clips(tmp_path):
    rng = np.random.default_rng(3)
    clips, items = {}, []
    for i in range(300):
        path = str(tmp_path / f"w{i}.wav")
        clips[path] = (rng.standard_normal(SR) * 3000).astype(np.int16)
        items.append(ds.Item(path, "yes" if i % 2 else "no", f"spk{i % 7}"))
    items += [ds.Item(None, "_silence_")] * 20
    noise = [aug.colored_noise("pink", 3 * SR, rng)]
    return items, clips, noise


def test_training_features_are_deterministic_per_seed_and_epoch(tmp_path):
    items, clips, noise = _items_and_clips(tmp_path)
    cfg = load_config(None)
    sources = aug.AugmentSources(backgrounds=tuple(noise))
    a = training_features(items, clips, cfg, sources, [], seed=[5, 0], workers=1)
    b = training_features(items, clips, cfg, sources, [], seed=[5, 0], workers=3)
    c = training_features(items, clips, cfg, sources, [], seed=[5, 1], workers=2)
    assert a.shape == (len(items), *cfg.features.input_shape) and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    assert np.array_equal(a, b)  # the same clips whatever the number of workers
    assert not np.allclose(a, c)  # another epoch, other clips


def test_each_augmentation_changes_the_features_and_off_means_off(tmp_path):
    items, clips, noise = _items_and_clips(tmp_path)
    sources = aug.AugmentSources(backgrounds=tuple(noise))
    off = dict(speed_range="[1.0,1.0]", vtlp_range="[1.0,1.0]", reverb_probability=0, eq_probability=0,
               band_limit_probability=0, background_frequency=0, gain_db=0, time_shift_ms=0, time_masks=0,
               freq_masks=0)
    words = [i for i in items if i.path]
    base = training_features(words, clips, _cfg(**off), sources, [], seed=[1, 0], workers=1)
    fe = Frontend(load_config(None).features)
    clean = np.stack([fe.features(clips[i.path].astype(np.float32) / 32768.0) for i in words])
    np.testing.assert_allclose(base, clean, atol=1e-4)  # everything off: the device's features
    for key, value in (("speed_range", "[0.9,1.1]"), ("vtlp_range", "[0.9,1.1]"), ("reverb_probability", 1),
                       ("eq_probability", 1), ("band_limit_probability", 1), ("background_frequency", 1),
                       ("gain_db", 20)):
        changed = training_features(words, clips, _cfg(**{**off, key: value}), sources, [], seed=[1, 0], workers=1)
        assert not np.allclose(changed, base, atol=1e-3), key


def test_warped_frontend_matches_the_edge_frontend_without_warp():
    cfg = load_config(None, ["augment.vtlp_range=[1.0,1.0]"])
    audio = np.random.default_rng(0).standard_normal((3, SR)).astype(np.float32) * 0.1
    wf = WarpedFrontend(cfg)
    np.testing.assert_allclose(wf.features(audio, np.zeros(3, np.int64)), Frontend(cfg.features).features(audio),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("override, message", [
    ("augment.speed_range=[1.2,0.9]", "speed_range must be [min, max]"),
    ("augment.vtlp_range=[0.5]", "vtlp_range must be [min, max]"),
    ("augment.reverb_probability=1.5", "reverb_probability must be in [0, 1]"),
    ("augment.background_snr_db=[30,10]", "background_snr_db must be [min, max]"),
    ("data.group_pattern=nohash", "needs a (group)"),
    ("data.group_pattern=([a-z", "not a valid regex"),
    ("train.mixup_alpha=-0.2", "mixup_alpha must be >= 0"),
])
def test_bad_augmentation_and_group_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_ranges_typed_on_the_command_line():
    cfg = load_config(None, ["augment.speed_range=0.95,1.05", "augment.background_snr_db=[]"])
    assert cfg.augment.speed_range == (0.95, 1.05)
    assert cfg.augment.background_snr_db == ()
    assert dataclasses.asdict(AugmentConfig())["gain_db"] == 6.0


def test_generated_noise_has_its_colour_and_is_mixed_without_noise_files():
    rng = np.random.default_rng(4)
    n = 8 * SR
    freqs = np.fft.rfftfreq(n, 1 / SR)
    for exponent in (0.0, 1.0, 2.0):
        power = np.abs(np.fft.rfft(aug.tilted_noise(n, exponent, rng))) ** 2
        low = power[(freqs > 100) & (freqs < 200)].mean()
        high = power[(freqs > 1600) & (freqs < 3200)].mean()
        # 1/f^k power: 4 octaves apart is 12 dB per unit of k (within the noise of the estimate)
        assert 10 * np.log10(low / high) == pytest.approx(12.0 * exponent * np.log2(2400 / 150) / 4, abs=1.5)
    cfg = _cfg(background_frequency=1, generated_noise_share=1, gain_db=0, time_shift_ms=0,
               speed_range="[1.0,1.0]", reverb_probability=0, eq_probability=0, band_limit_probability=0,
               background_snr_db="[10,10]")
    speech = _tone(440.0, amp=0.1)
    out = aug.augment_audio(speech, False, cfg.augment, SR, aug.AugmentSources(), rng)
    assert 20 * np.log10(aug.active_rms(speech) / _rms(out - speech)) == pytest.approx(10.0, abs=0.1)


def test_silence_clips_take_generated_noise_at_its_share():
    """_silence_ clips: with generated_noise_share the background file (a 1 kHz hum here) gives way to
    broadband noise of a random colour in about that share of them; at 0 they are the file's alone."""
    rng = np.random.default_rng(5)
    hum = _tone(1000.0, n=4 * SR, amp=0.1)
    sources = aug.AugmentSources(backgrounds=(hum,))
    zeros = np.zeros(SR, np.float32)

    def broadband(x):  # share of the power away from the hum's frequency
        power = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        return power[np.abs(f - 1000) > 50].sum() / max(power.sum(), 1e-20)

    for share, lo, hi in ((0.0, 0, 0), (0.5, 70, 130), (1.0, 195, 200)):
        cfg = _cfg(generated_noise_share=share, gain_db=0, silence_volume=1.0)
        clips = [aug.augment_audio(zeros, True, cfg.augment, SR, sources, rng) for _ in range(200)]
        generated = sum(broadband(c) > 0.5 for c in clips if np.any(c))
        assert lo <= generated <= hi, (share, generated)


def test_talk_background_share_mixes_talk_under_words_only():
    """augment.talk_background_share: that share of the noise mixes under a word take a window of the
    talk pool (a 2.5 kHz tone here) at the drawn SNR instead of a noise file (a 1 kHz hum); _silence_
    never gets talk; at share 0 a talk pool changes nothing, draw for draw (runs stay reproducible)."""
    hum = _tone(1000.0, n=4 * SR, amp=0.1)
    talk = tuple(_tone(2500.0, n=SR, amp=a) for a in (0.05, 0.2))
    sources = aug.AugmentSources(backgrounds=(hum,), talk=talk)
    speech = _tone(440.0, amp=0.1)

    def talk_power(x):  # share of the added noise's power at the talk's frequency
        power = np.abs(np.fft.rfft(x - speech)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        return power[np.abs(f - 2500) < 50].sum() / max(power.sum(), 1e-20)

    fixed = dict(background_frequency=1, gain_db=0, time_shift_ms=0, background_snr_db="[10,10]")
    for share, lo, hi in ((0.0, 0, 0), (0.5, 70, 130), (1.0, 200, 200)):
        cfg = _cfg(talk_background_share=share, **fixed)
        rng = np.random.default_rng(8)
        outs = [aug.augment_audio(speech, False, cfg.augment, SR, sources, rng) for _ in range(200)]
        with_talk = sum(talk_power(o) > 0.9 for o in outs)
        assert lo <= with_talk <= hi, (share, with_talk)
        for o in outs[:5]:  # talk or hum, at the drawn speech-to-noise ratio either way
            assert 20 * np.log10(aug.active_rms(speech) / _rms(o - speech)) == pytest.approx(10.0, abs=0.1)
    cfg = _cfg(talk_background_share=1.0, gain_db=0, silence_volume=1.0)
    rng = np.random.default_rng(9)
    silent = [aug.augment_audio(np.zeros(SR, np.float32), True, cfg.augment, SR, sources, rng) for _ in range(50)]
    assert all(_peak_hz(c) == pytest.approx(1000.0, abs=5) for c in silent if np.any(c))
    off = _cfg(talk_background_share=0.0, **fixed).augment
    a = [aug.augment_audio(speech, False, off, SR, sources, np.random.default_rng(3)) for _ in range(3)]
    b = [aug.augment_audio(speech, False, off, SR, aug.AugmentSources(backgrounds=(hum,)), np.random.default_rng(3))
         for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ConfigError, match=r"talk_background_share must be in \[0, 1\], got 1.5"):
        _cfg(talk_background_share=1.5)


def test_time_stretch_keeps_pitch_and_voice_shift_keeps_duration():
    from kws.trainer.augment import time_stretch, voice_shift

    sr = 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)

    def peak_hz(x):
        return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x)))))]

    for rate in (0.8, 1.25):
        out = time_stretch(tone, rate)
        assert len(out) == round(sr / rate) and peak_hz(out) == pytest.approx(440, abs=2)
        assert 0.28 < np.sqrt(np.mean(out[2000:-2000] ** 2)) < 0.4  # level kept (0.354 in)
    shifted = voice_shift(tone, 1.15)
    assert len(shifted) == sr and peak_hz(shifted) == pytest.approx(506, abs=2)
    assert np.array_equal(time_stretch(tone, 1.0), tone) and voice_shift(tone, 1.0) is tone


def test_stretch_and_shift_lengths_hold_for_every_clip_length():
    from kws.trainer.augment import time_stretch, voice_shift

    rng = np.random.default_rng(0)
    for n in range(3000, 9000, 97):  # float frame stepping once ran past the last frame here
        x = rng.normal(size=n).astype(np.float32)
        for factor in (0.84, 0.913, 1.1, 1.19):
            assert len(voice_shift(x, factor)) == n and len(time_stretch(x, factor)) == round(n / factor)


def test_mixup_blends_each_example_with_one_partner_and_keeps_it_the_larger_share():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5, 3)).astype(np.float32)
    y = np.eye(64, dtype=np.float32)  # one class per example, so a target shows its partner and share
    mx, my = aug.mixup(x, y, 0.4, np.random.default_rng([1, 2, 3]))
    assert mx.shape == x.shape and my.shape == y.shape and mx.dtype == np.float32
    np.testing.assert_allclose(my.sum(axis=1), 1.0, rtol=1e-6)
    # the own label keeps at least half of each target, so the argmax is never the partner's alone
    own = np.diag(my)
    assert (own >= 0.5 - 1e-6).all() and (own < 0.999).sum() > 32
    # the input is the same blend as the target, with the partner the target names
    for i in range(64):
        partner = int(np.argsort(my[i])[-2]) if own[i] < 1 else i
        np.testing.assert_allclose(mx[i], own[i] * x[i] + (1 - own[i]) * x[partner], atol=1e-5)
    again = aug.mixup(x, y, 0.4, np.random.default_rng([1, 2, 3]))
    np.testing.assert_array_equal(again[0], mx)
    other = aug.mixup(x, y, 0.4, np.random.default_rng([1, 3, 3]))
    assert not np.array_equal(other[0], mx)
    off = aug.mixup(x, y, 0.0, np.random.default_rng(0))
    assert off[0] is x and off[1] is y


def test_a_mask_wider_than_the_input_never_blanks_all_of_it():
    """A mask's width is drawn from 0 up to time_mask_frames / freq_mask_bins; where that was the
    whole input (clip_ms 100: 8 frames, against the default 10) a draw blanked every frame. It is now
    drawn at most one short of the input, so each masked clip keeps some of its own values."""
    from kws.trainer.augment import spec_augment
    from kws.trainer.config import AugmentConfig

    rng = np.random.default_rng(0)
    features = rng.normal(size=(8, 40)).astype(np.float32)
    for cfg, axis in ((AugmentConfig(time_masks=1, time_mask_frames=10, freq_masks=0), 1),
                      (AugmentConfig(time_masks=0, freq_masks=1, freq_mask_bins=40), 0)):
        kept = [int(np.any(spec_augment(features, cfg, rng) == features, axis=axis).sum()) for _ in range(200)]
        assert min(kept) >= 1 and max(kept) == features.shape[1 - axis]
