"""FreiHAND (Zimmermann et al. 2019), read from its native JSON and JPEG files.

Layout (``data_dir``)::

    training_xyz.json    [N][21][3] metres, camera frame, canonical (OpenPose) order, N = 32,560
    training_K.json      [N][3][3]
    training_mano.json   [N][1][61]: 48 pose (axis-angle, global first), 10 shape, root uv, scale
    training_scale.json  [N] metric length of the reference bone, metres
    training/rgb/%08d.jpg    4 N images: version v of label i is image v * N + i
    training/mask/%08d.jpg   N hand masks (the same hand in every version)
    evaluation_{xyz,K,mano,scale}.json, evaluation/rgb/%08d.jpg   (3,960 samples)
    evaluation/mask/%08d.jpg   (optional; no mask labels when absent)

The four training versions differ in background/colour only (green-screen, homogenised,
sample-based and auto-coloured), so sample ``j`` reads label ``j % N``. Right hands only.

MANO parameters: the files store the articulation relative to MANO's mean pose
(``hands_mean``; FreiHAND's own tools pose the model with ``use_mean_pose=True``), while
``mano.forward`` and the schema's ``mano_pose`` are relative to the flat hand. The loader cannot
ship MANO's ``hands_mean``: pass it (``hands_mean=model.hands_mean`` of the official right
model) to get ``mano_pose``; without it samples carry ``mano_betas`` only. The root's uv and
scale (the last 3 numbers) are not kept: ``keypoints_3d`` already places the hand.
"""

import os
from collections.abc import Sequence

import numpy as np

from hand_jax.data import files, schema

NUM_TRAIN_LABELS = 32560
NUM_VERSIONS = 4
SPLITS = {"train": "training", "training": "training", "test": "evaluation",
          "evaluation": "evaluation"}  # fmt: skip
MASK_THRESHOLD = 128  # masks are JPEGs: compression noise around 0 and 255


def read_labels(data_dir: str, prefix: str) -> dict[str, np.ndarray]:
    """Read the four ``<prefix>_*.json`` label files and check they agree in length.

    Args:
      data_dir: the FreiHAND root.
      prefix: ``training`` or ``evaluation``.

    Returns:
      dict with ``xyz`` [N, 21, 3], ``K`` [N, 3, 3], ``mano`` [N, 61], ``scale`` [N].

    Raises:
      DataError: a file is missing, not JSON, has the wrong shape, or the counts differ.
    """
    shapes = {"xyz": (None, 21, 3), "K": (None, 3, 3), "mano": (None, 1, 61), "scale": (None,)}
    labels, counts = {}, {}
    for key, shape in shapes.items():
        path = os.path.join(data_dir, f"{prefix}_{key}.json")
        what = f"FreiHAND {key} labels, a list of {list(shape[1:])}"
        labels[key] = files.as_array(files.read_json(path, what), path, shape, what)
        counts[path] = labels[key].shape[0]
    if len(set(counts.values())) != 1:
        raise files.DataError(f"FreiHAND label files disagree in length: {counts}")
    labels["mano"] = labels["mano"][:, 0]
    return labels


class FreiHANDSamples(Sequence):
    """One FreiHAND split as a lazy sequence of samples."""

    def __init__(
        self,
        data_dir: str,
        split: str,
        *,
        versions: Sequence[int] = (0, 1, 2, 3),
        hands_mean: np.ndarray | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"freihand: unknown {split=}; expected one of {list(SPLITS)}")
        self.prefix = SPLITS[split]
        self.hands_mean = None
        if hands_mean is not None:
            self.hands_mean = np.asarray(hands_mean, np.float64)
            if self.hands_mean.shape != (45,):
                raise ValueError(
                    f"freihand: hands_mean must have shape [45], got {self.hands_mean.shape}"
                )
        self.labels = read_labels(data_dir, self.prefix)
        self.num_labels = self.labels["xyz"].shape[0]
        if self.prefix == "training":
            bad = [v for v in versions if v not in range(NUM_VERSIONS)]
            if bad or not versions:
                raise ValueError(f"freihand: {versions=}; expected a subset of 0..3")
            self.versions = tuple(versions)
            expected_images = NUM_VERSIONS * self.num_labels
        else:
            self.versions = (0,)
            expected_images = self.num_labels
        self.rgb_dir = files.require_dir(
            os.path.join(data_dir, self.prefix, "rgb"), "FreiHAND rgb/%08d.jpg images"
        )
        files.check_count(
            found=files.count_files(self.rgb_dir, suffixes=(".jpg",)),
            expected=expected_images,
            path=self.rgb_dir,
            what=f"rgb images for the {self.num_labels} labels of {self.prefix}_xyz.json",
        )
        self.mask_dir = os.path.join(data_dir, self.prefix, "mask")
        self.has_masks = os.path.isdir(self.mask_dir)
        if self.has_masks:
            files.check_count(
                found=files.count_files(self.mask_dir, suffixes=(".jpg",)),
                expected=self.num_labels,
                path=self.mask_dir,
                what=f"masks for the {self.num_labels} labels of {self.prefix}_xyz.json",
            )
        elif self.prefix == "training":
            raise files.DataError(f"{self.mask_dir}: directory not found; expected FreiHAND masks")

    def __len__(self) -> int:
        return len(self.versions) * self.num_labels

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"freihand: index {index} out of range [0, {len(self)})")
        version, label = divmod(index, self.num_labels)
        image_index = self.versions[version] * self.num_labels + label
        image = files.read_image(os.path.join(self.rgb_dir, f"{image_index:08d}.jpg"))
        fields = {}
        if self.has_masks:
            path = os.path.join(self.mask_dir, f"{label:08d}.jpg")
            mask = files.read_label_image(path)
            files.check_image_size(mask, path, image.shape[:2])
            fields["mask"] = mask >= MASK_THRESHOLD
        xyz, K, mano = (self.labels[k][label] for k in ("xyz", "K", "mano"))
        if self.hands_mean is not None:
            fields["mano_pose"] = np.concatenate([mano[:3], mano[3:48] + self.hands_mean])
        return schema.make_sample(
            id=f"freihand/{self.prefix}/{image_index:08d}",
            image=image,
            keypoints_2d=files.project(xyz, K),
            keypoints_3d=xyz,
            K=K,
            mano_betas=mano[48:58],
            scale=self.labels["scale"][label],
            **fields,
        )


def load(
    data_dir: str,
    split: str,
    *,
    versions: Sequence[int] = (0, 1, 2, 3),
    hands_mean: np.ndarray | None = None,
) -> FreiHANDSamples:
    """Load a FreiHAND split.

    Args:
      data_dir: the FreiHAND root (``training_xyz.json`` etc.).
      split: ``train``/``training`` or ``test``/``evaluation``.
      versions: training image versions to include (0 green screen, 1 homogenised,
        2 sample-based, 3 auto-coloured); ignored for the evaluation split.
      hands_mean: [45] MANO's mean articulation (official right model); given, samples carry
        ``mano_pose`` relative to the flat hand (see the module doc).

    Returns:
      A sequence of right-hand samples with MANO shape (and pose if ``hands_mean``).
    """
    return FreiHANDSamples(data_dir, split, versions=versions, hands_mean=hands_mean)
