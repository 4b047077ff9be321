"""Pinned digests of `data.synthetic`'s outputs, so that restructuring the renderer cannot change a pixel.

The digests were computed with the code before `generate_video` was split into named steps (issue 18); the random
numbers are drawn in the same order since. tests/data/test_synthetic.py pins the default settings' frames, boxes
and action range (PINNED_TINY, PINNED_DEFAULT); these add the actor masks and the other settings, and the files
`generate` writes.
"""

import hashlib
import os
import pickle

import numpy as np
import pytest

from data import synthetic

SMALL = {"num_frames": 16, "width": 56, "height": 48}  # the default settings, smaller
SHORT = {"num_frames": 20}  # the study settings need the default frame size (actors up to 10 px, travel)
SETTINGS = {
    "default_masks": synthetic.SyntheticConfig(**SMALL),
    "study": synthetic.preset("study", **SHORT),
    "study_motion": synthetic.preset("study", cue="motion", **SHORT),
    "appearance_options": synthetic.SyntheticConfig(
        cue="appearance", distractor_look="class_parts", distractor_radius=(2.0, 8.0), clutter=3, noise_sigma=12.0,
        actor_radius_range=(2.5, 9.0), camera_drift=0.8, action_fraction=(0.3, 0.5), **SHORT,
    ),
    "decoys": synthetic.preset("study", decoy_probability=0.5, **SHORT),
}  # fmt: skip
# {setting: {(class index, group): digest}} of generate_video(class, default_rng([11, class, group]), masks=True).
PINNED = {
    "default_masks": {
        (0, 1): "9c3786c246bf71f1", (0, 2): "78a545057db46bcb", (1, 1): "41394e3bc391ecb3", (1, 2): "907c461e5f480927",
        (2, 1): "0cb85d859bc563df", (2, 2): "0661079ff8286d2e", (3, 1): "d07e001c37f1eec3", (3, 2): "123a66a3de0c8a13",
    },
    "study": {
        (0, 1): "db15d58e6e77dec8", (0, 2): "d27d672a90e04195", (1, 1): "687c3265362d5c98", (1, 2): "58ed1f3a4ea9082a",
        (2, 1): "809db669be7bfb8a", (2, 2): "c0be5d63e7825e1a", (3, 1): "6d39cdf7dff76206", (3, 2): "ea0d0d93fed05bd1",
    },
    "study_motion": {
        (0, 1): "70b512864b2a8231", (0, 2): "7a9187df0b83a8f2", (1, 1): "dce33f5f220bac9e", (1, 2): "dfb2780ce92c72ad",
        (2, 1): "105401b20ed1730d", (2, 2): "32a2b75bf561bb6e", (3, 1): "856e02327fa47200", (3, 2): "406db215e7050758",
    },
    "appearance_options": {
        (0, 1): "6a9b216e4bf8be8e", (0, 2): "b0a88ebec793e5b8", (1, 1): "c2b74295d85fd19d", (1, 2): "a45d325afcb8b9be",
        (2, 1): "ced5f39ff5c3c4ac", (2, 2): "8ae744b78dabcd17", (3, 1): "ba68243a53400ce7", (3, 2): "b6d8fbc7d2204656",
    },
    "decoys": {
        (0, 1): "39fcf034508a70e6", (0, 2): "79996ff34410068f", (1, 1): "cf64f23003317817", (1, 2): "6683a932fad900bc",
        (2, 1): "14113b554c169125", (2, 2): "70c599f79ce0cb7c", (3, 1): "e728ce445d29252c", (3, 2): "1d668c7d534aff19",
    },
}  # fmt: skip
DECOYS_MADE = 5  # of the 16 distractors of the "decoys" videos (2 each, probability 1/2)


def video_digest(video: synthetic.GeneratedVideo) -> str:
    """First 16 hex digits of the sha256 of frames, boxes, action range and (if rendered) actor masks."""
    digest = hashlib.sha256(video.frames.tobytes())
    digest.update(video.boxes.tobytes())
    digest.update(repr(video.action).encode())
    if video.actor_masks is not None:
        digest.update(video.actor_masks.tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_generate_video_renders_the_pinned_videos(name, monkeypatch):
    made = []
    make_decoy = synthetic._make_decoy

    def counting_make_decoy(*args):  # the real function, counted: the decoy setting must render some decoys
        made.append(args[2])
        make_decoy(*args)

    monkeypatch.setattr(synthetic, "_make_decoy", counting_make_decoy)
    config = SETTINGS[name]
    found = {
        key: video_digest(synthetic.generate_video(key[0], np.random.default_rng([11, *key]), config, masks=True))
        for key in PINNED[name]
    }
    assert found == PINNED[name]
    assert len(made) == (DECOYS_MADE if name == "decoys" else 0)


def test_masks_change_no_pixel():
    config = SETTINGS["decoys"]
    with_masks = synthetic.generate_video(2, np.random.default_rng([11, 2, 1]), config, masks=True)
    without = synthetic.generate_video(2, np.random.default_rng([11, 2, 1]), config)
    assert without.actor_masks is None
    np.testing.assert_array_equal(with_masks.frames, without.frames)
    np.testing.assert_array_equal(with_masks.boxes, without.boxes)


GENERATE_SETTINGS = {
    "tiny": synthetic.SyntheticConfig(
        seed=2, num_classes=2, train_per_class=2, test_per_class=1, num_frames=12, width=48, height=48
    ),
    "study_motion_decoys": synthetic.preset(
        "study", cue="motion", decoy_probability=0.5, train_per_class=1, test_per_class=1, num_frames=16
    ),
}
# {setting: (digest of the lists, annotations, flip map and synthetic.json; of the ground truth pickle's contents;
# of the encoded MJPG videos: these depend on OpenCV's JPEG encoder as well)}.
PINNED_GENERATE = {
    "tiny": ("8382b92af3065f6a", "3bb5c26b1c3b7240", "679061944962f973"),
    "study_motion_decoys": ("a220908cb2eb8d5b", "c82695eea13d1461", "d706bff4eedce3b5"),
}


def tree_digests(root: str) -> tuple[str, str, str]:
    """(text files, ground truth contents, videos) digests of a written benchmark, each over sorted paths."""
    text, videos = hashlib.sha256(), hashlib.sha256()
    for directory, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            if name.endswith(".pkl"):
                continue
            with open(path, "rb") as f:
                (videos if name.endswith(".avi") else text).update(relative.encode() + f.read())
    with open(os.path.join(root, "UCF101v2-GT.pkl"), "rb") as f:
        gt = pickle.load(f)
    truth = hashlib.sha256(
        repr([gt[k] for k in ("labels", "nframes", "resolution", "train_videos", "test_videos")]).encode()
    )
    for key in sorted(gt["gttubes"]):
        for label, tubes in sorted(gt["gttubes"][key].items()):
            truth.update(f"{key}:{label}".encode())
            for tube in tubes:
                truth.update(np.ascontiguousarray(tube, np.float32).tobytes())
    return text.hexdigest()[:16], truth.hexdigest()[:16], videos.hexdigest()[:16]


@pytest.mark.parametrize("name", list(GENERATE_SETTINGS))
def test_generate_writes_the_pinned_files(tmp_path, name):
    synthetic.generate(str(tmp_path), GENERATE_SETTINGS[name])
    assert tree_digests(str(tmp_path)) == PINNED_GENERATE[name]
