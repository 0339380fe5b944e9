"""Self-data augmentation: fit a training split, re-render it from new views, write a dataset.

    python -m launch.augment --dataset=synthetic --data_dir=/work/data/narrow --split=train \
        --views_per_sample=4 --out_dir=/work/data/narrow_aug [--checkpoint=RUN]

The output is a dataset in the synthetic format (train on it with ``--data_dir``, or mix it in
with ``--config.data.extra_dirs``). A rerun of the same command continues an interrupted run.
Library: ``hand_jax/augment/job.py``.
"""

import dataclasses

from absl import app, flags

from hand_jax import augment
from hand_jax.augment import fit, job, views

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or model dir (default: shipped model).")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Source dataset name (hand_jax.data).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Source dataset root.", required=True)
_SPLIT = flags.DEFINE_string("split", "train", "Source split (a test split is refused).")
_VIEWS = flags.DEFINE_integer("views_per_sample", 4, "New views per fitted sample.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Output dataset directory.", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the new views.")
_COUNT = flags.DEFINE_integer("count", 0, "Source samples to use (0: all).")
_SHARD = flags.DEFINE_integer("shard_size", 256, "Source samples per output shard.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Side of the rendered samples, pixels.")
_BACKGROUND = flags.DEFINE_enum("background", "procedural", views.BACKGROUNDS, "Backgrounds.")
_EVIDENCE = flags.DEFINE_enum("fit_evidence", "labels", fit.EVIDENCE, "What the fit refines to.")
_STEPS = flags.DEFINE_integer("refine_steps", fit.FitConfig.refine_steps, "Fit steps.")
_MAX_PX = flags.DEFINE_float("max_keypoint_px", fit.FitConfig.max_keypoint_px, "Skip worse fits.")
_MIN_IOU = flags.DEFINE_float("min_iou", fit.FitConfig.min_silhouette_iou, "Skip worse fits.")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "Hand model the network was trained with.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Crops per compiled fit call.")
_FORCE_TEST = flags.DEFINE_bool("force_test", False, "Allow a test split (method studies only).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a non-empty out_dir.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        request = augment.Request(
            checkpoint=_CHECKPOINT.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
            split=_SPLIT.value, views_per_sample=_VIEWS.value, seed=_SEED.value,
            count=_COUNT.value, shard_size=_SHARD.value,
            view=dataclasses.replace(
                views.ViewConfig(), image_size=_IMAGE_SIZE.value, background=_BACKGROUND.value
            ),
            fit=fit.FitConfig(
                evidence=_EVIDENCE.value, refine_steps=_STEPS.value,
                max_keypoint_px=_MAX_PX.value, min_silhouette_iou=_MIN_IOU.value,
            ),
        )  # fmt: skip
        job.check_request(request, force_test=_FORCE_TEST.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    try:
        manifest = augment.augment_dataset(
            request, out_dir=_OUT_DIR.value, overwrite=_OVERWRITE.value,
            force_test=_FORCE_TEST.value, batch_size=_BATCH.value, progress=_PROGRESS.value,
            mano_path=_MANO_PATH.value,
        )  # fmt: skip
    except (FileExistsError, NotADirectoryError) as err:  # refusals, not failures
        raise app.UsageError(str(err)) from err
    a = manifest["augment"]
    print(
        f"{a['rows']} source samples: {a['fitted']} fitted ({a['labels']} against labels), "
        f"{a['skipped_keypoints']} skipped for keypoints, {a['skipped_silhouette']} for the "
        f"silhouette -> {manifest['splits'][request.split]['count']} samples in {_OUT_DIR.value}"
        f" ({a['wall_s']} s)"
    )


if __name__ == "__main__":
    app.run(main)
