"""The synthetic benchmark: UCF101 raw layout, public ground-truth formats, determinism, and where the class is."""

import os
import pickle

import numpy as np
import pytest

from data import synthetic, video_io
from tests.data.conftest import TINY


def test_layout_and_lists(synthetic_raw):
    names = [c[0] for c in synthetic.CLASSES[:3]]
    with open(os.path.join(synthetic_raw, "ucfTrainTestlist", "classInd.txt")) as f:
        assert f.read().split("\n")[:3] == [f"{i + 1} {n}" for i, n in enumerate(names)]
    with open(os.path.join(synthetic_raw, "ucfTrainTestlist", "trainlist01.txt")) as f:
        train = f.read().split()
    with open(os.path.join(synthetic_raw, "ucfTrainTestlist", "testlist01.txt")) as f:
        test = f.read().split()
    assert train[:4] == ["MoveRight/v_MoveRight_g02_c01.avi", "1", "MoveRight/v_MoveRight_g03_c01.avi", "1"]
    assert test == [f"{n}/v_{n}_g01_c01.avi" for n in names]  # the low groups are the test set, as UCF101 split 1
    for relative in test + train[0::2]:
        frames, fps = video_io.read_video(os.path.join(synthetic_raw, "UCF-101", relative))
        assert frames.shape == (14, 48, 48, 3) and fps == 25.0


def test_ground_truth_formats_agree(synthetic_raw):
    with open(os.path.join(synthetic_raw, "UCF101v2-GT.pkl"), "rb") as f:
        gt = pickle.load(f, encoding="latin1")
    assert set(gt) == {"labels", "gttubes", "nframes", "resolution", "train_videos", "test_videos"}
    assert gt["labels"] == ["MoveRight", "MoveLeft", "MoveUp"]
    assert len(gt["train_videos"][0]) == 6 and len(gt["test_videos"][0]) == 3
    segments = {}
    for name in gt["labels"]:
        for subset in ("val", "test"):
            with open(os.path.join(synthetic_raw, "annotations", f"{name}_{subset}.txt")) as f:
                for line in f:
                    video, start, end = line.split()
                    segments[video] = (float(start), float(end))
    for video, tubes in gt["gttubes"].items():
        label = gt["labels"].index(video.split("/")[0])
        assert list(tubes) == [label] and gt["nframes"][video] == 14 and gt["resolution"][video] == (48, 48)
        tube = tubes[label][0]
        frames = tube[:, 0].astype(int)  # 1-based, consecutive: the action frames
        np.testing.assert_array_equal(frames, np.arange(frames[0], frames[-1] + 1))
        start, end = segments[os.path.basename(video)]
        assert start == pytest.approx((frames[0] - 1) / 25.0, abs=1e-3) and end == pytest.approx(frames[-1] / 25.0)
        assert 1 < frames[0] and frames[-1] < 14  # idle before and after
        assert np.all(tube[:, 1] < tube[:, 3]) and np.all(tube[:, 2] < tube[:, 4])
        assert np.all(tube[:, 1:] >= 0) and np.all(tube[:, 1:] <= 47)


def test_the_action_is_the_class_colour_inside_the_box_only_during_the_action(synthetic_raw):
    with open(os.path.join(synthetic_raw, "UCF101v2-GT.pkl"), "rb") as f:
        gt = pickle.load(f)
    for video in gt["test_videos"][0]:
        label = gt["labels"].index(video.split("/")[0])
        colour = np.array(synthetic.CLASSES[label][3], float)
        frames = video_io.read_video(os.path.join(synthetic_raw, "UCF-101", video + ".avi"))[0].astype(float)
        tube = gt["gttubes"][video][label][0]
        close = np.linalg.norm(frames - colour, axis=-1) < 60  # (T, H, W) pixels of the class colour
        for t in range(14):
            row = tube[tube[:, 0] == t + 1]
            if len(row):
                x1, y1, x2, y2 = np.round(row[0, 1:]).astype(int)
                inside = close[t, y1 : y2 + 1, x1 : x2 + 1].sum()
                assert inside >= 12 and inside >= 0.8 * close[t].sum()  # the colour is the actor, in its box
            else:
                assert close[t].sum() < 5  # idle: no class colour anywhere


def test_generation_is_deterministic_and_seeded(tmp_path):
    config = synthetic.SyntheticConfig(seed=1, num_classes=2, train_per_class=1, test_per_class=1, num_frames=12,
                                       width=48, height=48)  # fmt: skip
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    synthetic.generate(a, config)
    synthetic.generate(b, config)
    video = "UCF-101/MoveLeft/v_MoveLeft_g02_c01.avi"
    with open(os.path.join(a, video), "rb") as fa, open(os.path.join(b, video), "rb") as fb:
        assert fa.read() == fb.read()
    other = synthetic.generate_video(1, np.random.default_rng([2, 1, 2]), config).frames
    same = synthetic.generate_video(1, np.random.default_rng([1, 1, 2]), config).frames
    assert not np.array_equal(other, same)
    # A complete benchmark with the same parameters is kept; other parameters are refused.
    assert synthetic.generate(a, config)["seed"] == 1
    with pytest.raises(ValueError, match="other parameters"):
        synthetic.generate(a, synthetic.SyntheticConfig(seed=2, num_classes=2, train_per_class=1, test_per_class=1))


def test_every_class_moves_its_own_way():
    config = synthetic.SyntheticConfig(num_frames=30)
    for index, (name, motion, _, _) in enumerate(synthetic.CLASSES):
        video = synthetic.generate_video(index, np.random.default_rng(index), config)
        centres = (video.boxes[:, 1:3] + video.boxes[:, 3:5]) / 2
        sizes = video.boxes[:, 3] - video.boxes[:, 1]
        dx, dy = centres[-1] - centres[0]
        if motion in ("right", "left", "up", "down"):
            expected = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}[motion]
            assert np.sign(np.round([dx, dy])).tolist() == list(expected), name
        elif motion == "pulse":
            assert sizes.max() > 1.8 * sizes.min(), name
        elif motion in ("shake", "bounce", "spin"):
            assert np.ptp(centres, axis=0).max() < 26, name  # stays in place (moves back and forth or rotates)


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        synthetic.generate(str(tmp_path), synthetic.SyntheticConfig(num_classes=99))
    assert TINY.num_classes == 3


# Digests of videos rendered by the first version of the generator (computed before the settings below existed):
# default settings must keep rendering exactly these videos (the quickstart's benchmark and its numbers).
PINNED_TINY = {
    0: "71153d47fe872683",
    1: "3c1ed08d9c1ad115",
    2: "e306e581d00503ed",
    3: "8efb0f802515b726",
    4: "3337dec5cf33120a",
    5: "cc1bd4b70d6e2353",
    6: "14ddd4b567f5b80e",
    7: "09f435655f29427d",
    8: "106f7cb3fe8ed5a9",
    9: "b81f6a1ca3680f50",
    10: "e4f71e2f302c328a",
    11: "e63d15d4ee73ad37",
}
PINNED_DEFAULT = {0: "a5141335ecc574dc", 4: "c323a79ae6a4aa4b", 5: "33de05a08a7d9734", 7: "688e8087a91ac521"}


def _digest(video):
    import hashlib

    digest = hashlib.sha256(video.frames.tobytes())
    digest.update(video.boxes.tobytes())
    digest.update(repr(video.action).encode())
    return digest.hexdigest()[:16]


def test_default_settings_render_the_first_versions_videos_byte_for_byte():
    tiny = synthetic.SyntheticConfig(num_frames=12, width=48, height=48)
    for index, expected in PINNED_TINY.items():
        assert _digest(synthetic.generate_video(index, np.random.default_rng([3, index, 2]), tiny)) == expected
    for index, expected in PINNED_DEFAULT.items():
        video = synthetic.generate_video(index, np.random.default_rng([0, index, 1]), synthetic.SyntheticConfig())
        assert _digest(video) == expected
    # masks=True draws no random numbers: the same video.
    video = synthetic.generate_video(3, np.random.default_rng([3, 3, 2]), tiny, masks=True)
    assert _digest(video) == PINNED_TINY[3] and video.actor_masks.shape == (12, 48, 48)


def test_default_parameters_file_is_unchanged():
    # The keys of synthetic.json written by the first version: a benchmark written then is still found complete.
    assert set(synthetic.config_params(synthetic.SyntheticConfig())) == {
        "seed", "num_classes", "train_per_class", "test_per_class", "num_frames", "width", "height", "fps",
        "num_distractors", "actor_radius", "noise_sigma"}  # fmt: skip
    study = synthetic.config_params(synthetic.preset("study"))
    assert "cue" not in study and study["action_fraction"] == [0.25, 0.4] and study["num_classes"] == 6


SETTINGS = {
    "default": synthetic.SyntheticConfig(),
    "study": synthetic.preset("study"),
    "motion_cue": synthetic.preset("study", cue="motion"),
    "appearance_cue": synthetic.preset("study", cue="appearance", camera_drift=1.0, action_fraction=(0.1, 0.2)),
    "small_actors_no_clutter": synthetic.SyntheticConfig(actor_radius_range=(1.5, 4.0), num_distractors=0),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_boxes_hold_the_actor_and_frames_match_the_action(name):
    config = SETTINGS[name]
    for index in range(config.num_classes):
        video = synthetic.generate_video(index, np.random.default_rng([5, index, 1]), config, masks=True)
        start, end = video.action
        assert 1 <= start < end <= config.num_frames - 1
        np.testing.assert_array_equal(video.boxes[:, 0], np.arange(start, end) + 1)  # 1-based action frames
        for row in video.boxes:
            t = int(row[0]) - 1
            ys, xs = np.nonzero(video.actor_masks[t])
            assert len(xs) >= 6, (name, index, t)
            x1, y1, x2, y2 = row[1:]
            # Every pixel at least half covered by the actor is inside its box (1 px of anti-aliasing / outline).
            assert xs.min() >= x1 - 1.5 and xs.max() <= x2 + 1.5 and ys.min() >= y1 - 1.5 and ys.max() <= y2 + 1.5
            # ... and the box is tight around them.
            assert xs.min() <= x1 + 1.5 and xs.max() >= x2 - 1.5 and ys.min() <= y1 + 1.5 and ys.max() >= y2 - 1.5
        low, high = config.action_fraction
        assert round(low * config.num_frames) - 1 <= end - start <= round(high * config.num_frames) + 1


def _actor_colour(video):
    t = (video.action[0] + video.action[1]) // 2
    # Pixels 2 px inside the actor's outline.
    inner = video.actor_masks[t] & np.roll(video.actor_masks[t], 2, 0) & np.roll(video.actor_masks[t], -2, 0)
    inner &= np.roll(video.actor_masks[t], 2, 1) & np.roll(video.actor_masks[t], -2, 1)
    return np.median(video.frames[t][inner].astype(float), axis=0)


def test_the_cue_decides_where_the_class_lives():
    palette = np.array([c[3] for c in synthetic.CLASSES[:6]], float)
    colours = {}
    for cue in ("both", "motion"):
        config = synthetic.preset("study", cue=cue, num_distractors=0, clutter=0, actor_radius_range=(8.0, 10.0))
        found = set()
        for group in range(12):
            video = synthetic.generate_video(0, np.random.default_rng([1, 0, group]), config, masks=True)
            found.add(int(np.argmin(np.linalg.norm(palette - _actor_colour(video), axis=1))))
        colours[cue] = found
    assert colours["both"] == {0}  # MoveRight is red
    assert len(colours["motion"]) >= 3  # any class's colour
    moves = {}
    for cue in ("both", "appearance"):
        config = synthetic.preset("study", cue=cue)
        dx = []
        for group in range(12):
            boxes = synthetic.generate_video(0, np.random.default_rng([1, 0, group]), config).boxes
            dx.append(((boxes[-1, 1] + boxes[-1, 3]) - (boxes[0, 1] + boxes[0, 3])) / 2)
        moves[cue] = np.array(dx)
    assert np.all(moves["both"] > 20)  # MoveRight moves right, ~0.4 of the width
    assert np.sum(moves["appearance"] > 20) <= 9 and np.sum(moves["appearance"] < 10) >= 3  # other motions too


def test_class_part_distractors_never_show_a_class_combination():
    rng = np.random.default_rng(0)
    pairs = {(c[2], c[3]) for c in synthetic.CLASSES[:6]}
    drawn = [synthetic._class_parts(rng, 6) for _ in range(200)]
    assert not pairs & set(drawn)
    assert {d[1] for d in drawn} == {c[3] for c in synthetic.CLASSES[:6]}  # but every class colour appears


def test_study_preset_and_flags(tmp_path):
    from absl import flags

    values = flags.FlagValues()
    synthetic._define_flags(values)
    values(
        [
            "prog",
            f"--out_dir={tmp_path}",
            "--preset=study",
            "--cue=motion",
            "--action_fraction=0.2,0.3",
            "--noise_sigma=20",
        ]
    )
    config = synthetic.config_from_flags(values)
    assert config == synthetic.preset("study", cue="motion", action_fraction=(0.2, 0.3), noise_sigma=20.0)
    values = flags.FlagValues()
    synthetic._define_flags(values)
    values(["prog", f"--out_dir={tmp_path}", "--num_classes=4"])
    assert synthetic.config_from_flags(values) == synthetic.SyntheticConfig(num_classes=4)
    with pytest.raises(ValueError, match="unknown preset"):
        synthetic.preset("hard")


@pytest.mark.parametrize(
    "override, message",
    [({"cue": "colour"}, "cue must be"), ({"distractor_look": "red"}, "distractor_look"),
     ({"actor_radius_range": (5.0, 3.0)}, "actor_radius_range"), ({"action_fraction": (0.5, 0.9)}, "action_fraction"),
     ({"camera_drift": 2.0}, "camera_drift"), ({"noise_sigma": -1.0}, "noise_sigma")],
)  # fmt: skip
def test_bad_settings_are_named(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        synthetic.generate(str(tmp_path), synthetic.SyntheticConfig(**override))


@pytest.mark.parametrize("cue", ["both", "motion"])
def test_study_benchmark_ground_truth_files_agree(tmp_path, cue):
    config = synthetic.preset("study", cue=cue, train_per_class=1, test_per_class=1)
    params = synthetic.generate(str(tmp_path), config)
    assert params["distractor_look"] == "class_parts" and params.get("cue", "both") == cue
    with open(tmp_path / "UCF101v2-GT.pkl", "rb") as f:
        gt = pickle.load(f)
    assert gt["labels"] == [c[0] for c in synthetic.CLASSES[:6]] and len(gt["gttubes"]) == 12
    for video, tubes in gt["gttubes"].items():
        name = video.split("/")[0]
        subset = "test" if video.endswith("_g01_c01") else "val"
        with open(tmp_path / "annotations" / f"{name}_{subset}.txt") as f:
            start, end = next(map(float, line.split()[1:]) for line in f if line.startswith(video.split("/")[1]))
        frames = tubes[gt["labels"].index(name)][0][:, 0]
        assert start == pytest.approx((frames[0] - 1) / 25.0, abs=1e-3) and end == pytest.approx(frames[-1] / 25.0)
        assert 0.25 * 40 - 1 <= len(frames) <= 0.4 * 40 + 1  # the study's short action
    assert synthetic.generate(str(tmp_path), config) == params  # found complete on a re-run


def test_noise_sigma_is_the_pixel_noise_standard_deviation():
    # The same draws with sigma 0 and 20: the frames differ by the noise alone (rounded, rarely clipped at 0/255).
    clean, noisy = (
        synthetic.generate_video(2, np.random.default_rng(5), synthetic.preset("study", noise_sigma=s))
        for s in (0.0, 20.0)
    )
    difference = noisy.frames.astype(np.float64) - clean.frames
    assert abs(difference.mean()) < 0.5
    assert 19.0 < difference.std() < 20.5
    np.testing.assert_array_equal(noisy.boxes, clean.boxes)


def test_decoys_perform_another_class_motion_over_a_window_and_idle_around_it():
    config = synthetic.preset("study", decoy_probability=1.0)
    rng = np.random.default_rng(3)
    motions = []
    for _ in range(200):
        distractor = {"radius": 10.0}
        synthetic._make_decoy(rng, config, distractor, "right")
        decoy = distractor["decoy"]
        motions.append(decoy["motion"])
        assert 1 <= decoy["start"] and decoy["start"] + decoy["length"] < config.num_frames
        # The whole excursion stays inside the frame, as the actor's does.
        for t in range(config.num_frames):
            centre, scale, _ = synthetic._decoy_pose(decoy, t, config)
            assert 0 <= centre[0] - 10.0 * scale and centre[0] + 10.0 * scale <= config.width
            assert 0 <= centre[1] - 10.0 * scale and centre[1] + 10.0 * scale <= config.height
    assert set(motions) == {"left", "up", "down", "pulse", "spin"}  # every other class of the 6, never the actor's
    # MoveUp, 0.45 * height upwards over its window; still before and after it.
    decoy = {"motion": "up", "start": 10, "length": 11, "anchor": np.array([40.0, 60.0])}
    poses = [synthetic._decoy_pose(decoy, t, config)[0] for t in (0, 9, 10, 15, 20, 21, 39)]
    expected_y = [60.0, 60.0, 60.0, 60.0 - 0.45 * 72 * 0.5, 60.0 - 0.45 * 72, 60.0 - 0.45 * 72, 60.0 - 0.45 * 72]
    np.testing.assert_allclose([p[1] for p in poses], expected_y)
    np.testing.assert_allclose([p[0] for p in poses], 40.0)


def test_decoy_probability_zero_renders_the_study_benchmark_unchanged_and_one_changes_it():
    def render(**overrides):
        return synthetic.generate_video(1, np.random.default_rng(8), synthetic.preset("study", **overrides))

    plain = render()
    assert _digest(render(decoy_probability=0.0)) == _digest(plain)
    assert not np.array_equal(render(decoy_probability=1.0).frames, plain.frames)
    assert "decoy_probability" not in synthetic.config_params(synthetic.preset("study"))
    assert synthetic.config_params(synthetic.preset("study", decoy_probability=0.5))["decoy_probability"] == 0.5
