"""TSN clip augmentation: multi-scale corner cropping and flips for training, centre / 3 / 10 crops for testing.

Training (TSN's ``GroupMultiScaleCrop`` + ``GroupRandomHorizontalFlip``): the crop side is drawn from
``int(min(H, W) * scale)`` for the scales (1, .875, .75, .66) independently for height and width with at most
``max_distort`` (= 1) steps between them (sides within 3 pixels of the input size snap to it), the crop is placed at one
of 5 fixed positions (4 corners + centre) or 13 with ``more_fix_crop`` (plus the 4 edge centres and 4 quarter
points), resized to the input size, and flipped with probability 1/2. The SAME crop and flip apply to every frame of
the clip. A flip mirrors flow too, so the x component changes sign: on quantised flow ``u -> 255 - u`` (exact).

Testing (TSN's ``GroupScale`` + ``GroupCenterCrop`` / ``GroupOverSample``, mmaction2's ``ThreeCrop``): frames are
resized so the short side is ``input_size * 256 // 224`` (256 for 224 inputs: a no-op on TSN's 340x256 frames), then
1 crop (centre), 3 crops (start, centre, end of the long side) or 10 crops (4 corners + centre, each also flipped;
TSN's order: crop 0, flipped crop 0, crop 1, ...).

Flip label map (mmaction2's ``Flip(flip_label_map=...)``): where a class is defined by a direction, a mirrored clip
is another class (a mirrored MoveRight moves left) or no class at all. A map ``{class: mirrored class or None}``
(identity for the classes it does not name) says so: a flipped training clip takes the mirrored class's label, and a
clip of a class mapped to None is never flipped. As `flip_targets`: int (C,), the class index of a mirrored clip of
each class, `NEVER_FLIP` (-1) for None. 10-crop testing reads a mirrored crop's scores through the same map
(`unmirror_crop_scores`): a class's score from a mirrored crop is the mirrored class's, and a class that is never
mirrored takes its unmirrored crop's score, so its mirrored crops do not vote on it.

Random choices come in as uniforms in [0, 1) so the NumPy functions (reference, tests) and the TensorFlow ones (in
`tf.data`) agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

TSN_SCALES = (1.0, 0.875, 0.75, 0.66)
NEVER_FLIP = -1
# --flip_label_map values besides explicit pairs.
FLIP_MAP_FROM_MANIFEST = "manifest"
FLIP_MAP_IDENTITY = "identity"


def eval_scale_size(input_size: int) -> int:
    """Short side frames are resized to before test crops: ``input_size * 256 // 224`` (TSN)."""
    return input_size * 256 // 224


def _distortion_pairs(num_scales: int, max_distort: int) -> list[tuple[int, int]]:
    """(height scale index, width scale index) pairs at most ``max_distort`` apart, in TSN's order."""
    return [(i, j) for i in range(num_scales) for j in range(num_scales) if abs(i - j) <= max_distort]


def multiscale_crop_sizes(
    height: int, width: int, input_size: int, scales: Sequence[float] = TSN_SCALES, max_distort: int = 1
) -> list[tuple[int, int]]:
    """Candidate (crop_h, crop_w) of TSN's multi-scale crop, in TSN's order (NumPy reference).

    Args:
      height: frame height.
      width: frame width.
      input_size: model input side.
      scales: crop scales relative to the short side.
      max_distort: most scale steps between crop height and width (1: aspect distortion of one step).

    Returns:
      list of (crop_h, crop_w).
    """
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    snapped = [input_size if abs(s - input_size) < 3 else s for s in sizes]
    return [(snapped[i], snapped[j]) for i, j in _distortion_pairs(len(scales), max_distort)]


def fixed_crop_offsets(
    height: int, width: int, crop_h: int, crop_w: int, more_fix_crop: bool = True
) -> list[tuple[int, int]]:
    """TSN's fixed crop positions (y, x): 4 corners + centre, and with ``more_fix_crop`` 8 more (NumPy reference).

    Returns:
      list of 5 or 13 (y, x) top-left corners, in TSN's ``fill_fix_offset`` order.
    """
    w_step = (width - crop_w) // 4
    h_step = (height - crop_h) // 4
    xy = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        xy += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(j * h_step, i * w_step) for i, j in xy]


def multiscale_crop_window(
    height: int,
    width: int,
    input_size: int,
    uniforms: Sequence[float],
    scales: Sequence[float] = TSN_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tuple[int, int, int, int]:
    """The training crop (y, x, crop_h, crop_w) chosen by two uniforms (size choice, position choice) (NumPy)."""
    sizes = multiscale_crop_sizes(height, width, input_size, scales, max_distort)
    crop_h, crop_w = sizes[int(np.floor(uniforms[0] * len(sizes)))]
    offsets = fixed_crop_offsets(height, width, crop_h, crop_w, more_fix_crop)
    y, x = offsets[int(np.floor(uniforms[1] * len(offsets)))]
    return y, x, crop_h, crop_w


def multiscale_crop_window_tf(
    height: tf.Tensor,
    width: tf.Tensor,
    input_size: int,
    uniforms: tf.Tensor,
    scales: Sequence[float] = TSN_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tf.Tensor:
    """TensorFlow twin of `multiscale_crop_window` for dynamic frame sizes.

    Args:
      height: scalar frame height.
      width: scalar frame width.
      input_size: model input side.
      uniforms: float (2,) in [0, 1).

    Returns:
      int32 (4,): y, x, crop_h, crop_w.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    uniforms = tf.cast(uniforms, tf.float64)
    base = tf.cast(tf.minimum(height, width), tf.float64)
    sizes = tf.cast(tf.floor(base * tf.constant(scales, tf.float64)), tf.int32)
    sizes = tf.where(tf.abs(sizes - input_size) < 3, input_size, sizes)
    pairs = tf.constant(_distortion_pairs(len(scales), max_distort), tf.int32)  # (P, 2)
    pair = pairs[tf.cast(tf.floor(uniforms[0] * pairs.shape[0]), tf.int32)]
    crop_h, crop_w = sizes[pair[0]], sizes[pair[1]]
    xy = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        xy += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    steps = tf.constant(xy, tf.int32)  # (N, 2) multiples of (w_step, h_step)
    choice = steps[tf.cast(tf.floor(uniforms[1] * len(xy)), tf.int32)]
    x = choice[0] * ((width - crop_w) // 4)
    y = choice[1] * ((height - crop_h) // 4)
    return tf.stack([y, x, crop_h, crop_w])


def flow_x_channel_mask(channels: int, modality: str) -> np.ndarray:
    """Bool (C,): True for the flow-x channels (even channels of an interleaved x, y flow stack)."""
    if modality == "rgb":
        return np.zeros((channels,), bool)
    return np.arange(channels) % 2 == 0


def flip_horizontally(frames: tf.Tensor, modality: str) -> tf.Tensor:
    """Mirrors frames left-right; for flow also negates x: quantised ``u -> 255 - u``.

    Args:
      frames: (..., H, W, C) in [0, 255], float or uint8; flow channels interleaved x, y.
      modality: "rgb" or "flow".

    Returns:
      (..., H, W, C), the dtype of ``frames``.
    """
    flipped = tf.reverse(frames, axis=[-2])
    if modality == "rgb":
        return flipped
    mask = tf.constant(flow_x_channel_mask(frames.shape[-1], modality))
    return tf.where(mask, tf.constant(255, frames.dtype) - flipped, flipped)


def parse_flip_label_map(text: str) -> dict[str, str | None]:
    """Parses ``"A:B,C:-"`` (a mirrored A is a B and a mirrored B an A; a C is never mirrored) into a map.

    Raises:
      ValueError: an item that is not ``name:name`` or ``name:-``, or a class given two mirrors.
    """
    mapping: dict[str, str | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = (side.strip() for side in item.partition(":"))
        if not sep or not source or not target:
            raise ValueError(f"--flip_label_map takes 'A:B' or 'A:-' items (class names), got {item!r}.")
        pairs = [(source, None)] if target == "-" else [(source, target), (target, source)]
        for name, mirror in pairs:
            if mapping.get(name, mirror) != mirror:
                raise ValueError(f"--flip_label_map gives {name!r} two mirrors: {mapping[name]!r} and {mirror!r}.")
            mapping[name] = mirror
    return mapping


def resolve_flip_label_map(
    spec: str | Mapping[str, str | None], manifest_map: Mapping[str, str | None] | None
) -> dict[str, str | None]:
    """The flip label map a run trains with (only its non-identity entries).

    Args:
      spec: "manifest" (``manifest_map``; identity if None), "identity", an ``"A:B,C:-"`` string
        (`parse_flip_label_map`), or a map itself.
      manifest_map: the records' manifest.json "flip_label_map", or None.
    """
    if isinstance(spec, Mapping):
        mapping = dict(spec)
    elif spec == FLIP_MAP_FROM_MANIFEST:
        mapping = dict(manifest_map or {})
    elif spec == FLIP_MAP_IDENTITY:
        mapping = {}
    else:
        mapping = parse_flip_label_map(spec)
    return {name: mirror for name, mirror in mapping.items() if mirror != name}


def flip_targets(class_names: Sequence[str], flip_label_map: Mapping[str, str | None] | None) -> np.ndarray | None:
    """int32 (C,): the class of a mirrored clip of each class (`NEVER_FLIP` where it is never mirrored).

    Args:
      class_names: the dataset's classes, in label order.
      flip_label_map: {class: mirrored class, or None for never mirrored}; classes it does not name keep their label.

    Returns:
      the targets, or None for the identity map (TSN's flip, which changes no label).

    Raises:
      ValueError: a name that is not a class, or a map that is not symmetric (A -> B but B -> something else).
    """
    mapping = {name: mirror for name, mirror in (flip_label_map or {}).items() if mirror != name}
    if not mapping:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({n for pair in mapping.items() for n in pair if n is not None and n not in index})
    if unknown:
        raise ValueError(
            f"the flip label map names {unknown}, which are not classes of this dataset ({list(class_names)})."
        )
    targets = np.arange(len(class_names), dtype=np.int32)
    for name, mirror in mapping.items():
        if mirror is not None and mirror in mapping and mapping[mirror] != name:
            raise ValueError(
                f"the flip label map is not symmetric: {name!r} -> {mirror!r} but {mirror!r} -> "
                f"{mapping.get(mirror)!r}."
            )
        targets[index[name]] = NEVER_FLIP if mirror is None else index[mirror]
        if mirror is not None:
            targets[index[mirror]] = index[name]
    return targets


def flip_with_labels_tf(
    flip: tf.Tensor, label_index: tf.Tensor | tf.RaggedTensor, targets: np.ndarray | None
) -> tuple[tf.Tensor, tf.Tensor | tf.RaggedTensor]:
    """Applies the flip label map to the flip draws of clips and their labels.

    Args:
      flip: bool () or (B,): the flip draw of each clip.
      label_index: int (n,) class indices of one clip, or a `tf.RaggedTensor` (B, None) of a batch.
      targets: `flip_targets`, or None (identity: ``flip`` and the labels are returned as they are).

    Returns:
      (bool like ``flip``: the clips that are mirrored - drawn and of no never-mirrored class, label indices of the
      same shape and dtype as ``label_index`` - the mirrored class where a clip is mirrored).
    """
    if targets is None:
        return flip, label_index
    dtype = label_index.dtype
    table = tf.constant(targets, tf.int64)
    if isinstance(label_index, tf.RaggedTensor):
        plain = tf.cast(label_index.flat_values, tf.int64)  # (N,) every clip's labels, concatenated
        mirrored = tf.gather(table, plain)  # (N,)
        rows = label_index.value_rowids()  # (N,) the clip of each label
        never = tf.math.unsorted_segment_sum(tf.cast(mirrored < 0, tf.int32), rows, tf.shape(flip)[0])  # (B,)
        flip = tf.logical_and(flip, tf.equal(never, 0))
        relabelled = tf.where(tf.gather(flip, rows), mirrored, plain)  # (N,)
        return flip, label_index.with_flat_values(tf.cast(relabelled, dtype))
    mirrored = tf.gather(table, tf.cast(label_index, tf.int64))  # (n,)
    flip = tf.logical_and(flip, tf.reduce_all(mirrored >= 0))
    return flip, tf.cast(tf.where(flip, mirrored, tf.cast(label_index, tf.int64)), dtype)


def unmirror_crop_scores(scores: tf.Tensor, targets: np.ndarray | None) -> tf.Tensor:
    """Reads the mirrored crops' class scores of a 10-crop test through the flip label map.

    Args:
      scores: float (B, 10, C): per-crop scores in `eval_crops`' order (crop 0, mirrored crop 0, crop 1, ...).
      targets: `flip_targets`, or None (identity: returned as is, TSN's 10-crop).

    Returns:
      float (B, 10, C): a mirrored crop's score of class c is its score of ``targets[c]`` (the mirrored class), or,
      where c is never mirrored, the unmirrored crop's score of c.
    """
    if targets is None:
        return scores
    pairs = tf.reshape(scores, [-1, 5, 2, scores.shape[-1]])  # (B, 5, 2, C): (unmirrored, mirrored) per position
    plain, mirrored = pairs[:, :, 0], pairs[:, :, 1]  # (B, 5, C) each
    read = tf.gather(mirrored, np.maximum(targets, 0), axis=-1)  # (B, 5, C)
    read = tf.where(tf.constant(targets >= 0), read, plain)
    return tf.reshape(tf.stack([plain, read], axis=2), tf.shape(scores))  # (B, 10, C)


def resize_short_side(frames: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear resize of (N, H, W, C) float frames so that min(H, W) == size (no-op when it already is)."""
    shape = tf.shape(frames)
    height, width = shape[1], shape[2]
    short = tf.minimum(height, width)

    def resize():
        scale = tf.cast(size, tf.float64) / tf.cast(short, tf.float64)
        new_h = tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32)
        new_w = tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32)
        return tf.image.resize(frames, tf.stack([new_h, new_w]), method="bilinear")

    return tf.cond(tf.equal(short, size), lambda: frames, resize)


def eval_crop_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Top-left (y, x) of the 1 / 3 / 5 distinct test crops of side ``size`` (NumPy reference).

    1: centre. 3: start, centre, end along the long side (mmaction2's ThreeCrop). 10 uses these 5 positions (TSN's
    ``fill_fix_offset(False, ...)``: upper-left, upper-right, lower-left, lower-right, centre) and their flips.
    """
    if crops == 1:
        return [((height - size) // 2, (width - size) // 2)]
    if crops == 3:
        if width >= height:
            return [((height - size) // 2, x) for x in (0, (width - size) // 2, width - size)]
        return [(y, (width - size) // 2) for y in (0, (height - size) // 2, height - size)]
    if crops == 10:
        return fixed_crop_offsets(height, width, size, size, more_fix_crop=False)
    raise ValueError(f"crops must be 1, 3 or 10, got {crops}")


def eval_crops(frames: tf.Tensor, input_size: int, crops: int, modality: str) -> tf.Tensor:
    """Test-time crops of a clip.

    Args:
      frames: float (K, H, W, C) in [0, 255].
      input_size: crop side S.
      crops: 1, 3 or 10.
      modality: "rgb" or "flow" (flips of the 10-crop invert flow-x).

    Returns:
      float (crops, K, S, S, C).
    """
    frames = resize_short_side(frames, eval_scale_size(input_size))
    shape = tf.shape(frames)
    height, width = shape[1], shape[2]
    size = input_size
    half_h, half_w = (height - size) // 2, (width - size) // 2
    if crops == 1:
        offsets = [(half_h, half_w)]
    elif crops == 3:
        along_x = [(half_h, 0), (half_h, half_w), (half_h, width - size)]
        along_y = [(0, half_w), (half_h, half_w), (height - size, half_w)]
        offsets = [
            (tf.where(width >= height, ax[0], ay[0]), tf.where(width >= height, ax[1], ay[1]))
            for ax, ay in zip(along_x, along_y)
        ]
    elif crops == 10:
        h_step, w_step = (height - size) // 4, (width - size) // 4
        offsets = [(j * h_step, i * w_step) for i, j in [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]]
    else:
        raise ValueError(f"crops must be 1, 3 or 10, got {crops}")
    out = []
    for y, x in offsets:
        crop = frames[:, y : y + size, x : x + size, :]  # (K, S, S, C)
        out.append(crop)
        if crops == 10:
            out.append(flip_horizontally(crop, modality))
    return tf.stack(out, axis=0)  # (crops, K, S, S, C)
