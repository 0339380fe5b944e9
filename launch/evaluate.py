"""Evaluate 3D hand keypoints on a benchmark: metrics.json, per-sample npz, tables, PCK plots.

    python -m launch.evaluate --predictions=preds.npz --ground_truth=gt.npz --dataset=stb \
        --out_dir=out/eval/stb
    python -m launch.evaluate --predictions=preds.npz --dataset=rhd --data_dir=/data/RHD \
        --split=test --out_dir=out/eval/rhd --variant=no_refine \
        --compare_with=out/eval/rhd_full/metrics.json

npz layouts and protocols: ``hand_jax/eval/evaluate.py`` and ``hand_jax/eval/metrics.py``.
``--checkpoint=<training --workdir or model directory>`` runs a trained model over
``--data_dir``'s split instead (``hand_jax.estimate.scoring.evaluate_split``, the one route that
scores a checkpoint): the network alone into ``out_dir`` (and ``out_dir/scores.{json,md}``), or
with ``--refine_steps=N`` (N > 0) with and without test-time refinement on the network's own
evidence in one run: ``out_dir/network``, ``out_dir/refined`` and
``out_dir/refinement.{json,md}``.
"""

from absl import app, flags, logging

from hand_jax.estimate import scoring
from hand_jax.eval import evaluate

_PREDICTIONS = flags.DEFINE_string(
    "predictions", None, "npz with ids [N] and keypoints_3d [N, 21, 3] metres."
)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Model checkpoint to run instead.")
_GROUND_TRUTH = flags.DEFINE_string(
    "ground_truth", None, "npz with ids, keypoints_3d [N, 21, 3] metres, keypoint_valid [N, 21]."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset root: ground truth via load_split.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "synthetic | rhd | stb | dexter_object | freihand (or a table label).",
    required=True,
)  # fmt: skip
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split (with --data_dir).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Output directory.", required=True)
_METHOD = flags.DEFINE_string("method", "hand_jax", "Method name for the table rows.")
_VARIANT = flags.DEFINE_string(
    "variant",
    None,
    "Configuration name for the table rows (default: 'default'; with "
    "--refine_steps: network / refined).",
)
_COMPARE_WITH = flags.DEFINE_list(
    "compare_with", [], "Other runs' metrics.json to tabulate and plot beside this one."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into a non-empty out_dir.")
_REFINE_STEPS = flags.DEFINE_integer(
    "refine_steps", 0, "With --checkpoint: also score N steps of test-time refinement."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if (_PREDICTIONS.value is None) == (_CHECKPOINT.value is None):
        raise app.UsageError("pass exactly one of --predictions and --checkpoint")
    if _CHECKPOINT.value is not None:
        _checkpoint()
        return
    if _REFINE_STEPS.value:
        raise app.UsageError("--refine_steps needs --checkpoint")
    result = evaluate.evaluate(
        out_dir=_OUT_DIR.value, dataset=_DATASET.value, predictions=_PREDICTIONS.value,
        ground_truth=_GROUND_TRUTH.value, data_dir=_DATA_DIR.value, split=_SPLIT.value,
        method=_METHOD.value, variant=_VARIANT.value or "default",
        compare_with=_COMPARE_WITH.value, overwrite=_OVERWRITE.value,
    )  # fmt: skip
    _print_primary(result["dataset"], result["num_samples"], result["primary"])


def _print_primary(dataset: str, num_samples: int, p: dict, label: str = "") -> None:
    logging.info("wrote %s", _OUT_DIR.value)
    print(
        f"{label}{dataset} ({num_samples} samples, {p['alignment']}): "
        f"AUC 20-50 mm {p['auc_20_50']:.3f}, EPE mean {p['epe_mean_mm']:.2f} mm, "
        f"median {p['epe_median_mm']:.2f} mm -> {_OUT_DIR.value}"
    )


def _checkpoint():
    if not _DATA_DIR.value or _GROUND_TRUTH.value:
        raise app.UsageError("--checkpoint needs --data_dir (the split it runs on), not "
                             "--ground_truth")  # fmt: skip
    if _REFINE_STEPS.value < 0:
        raise app.UsageError(f"--refine_steps={_REFINE_STEPS.value}: expected >= 0")
    result = scoring.evaluate_split(
        _CHECKPOINT.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value, split=_SPLIT.value,
        out_dir=_OUT_DIR.value, refine_steps=_REFINE_STEPS.value, overwrite=_OVERWRITE.value,
        method=_METHOD.value, variant=_VARIANT.value, compare_with=_COMPARE_WITH.value,
    )  # fmt: skip
    for name, primary in result["protocol"].items():
        _print_primary(result["dataset"], result["num_samples"], primary, f"{name:8s} ")
        m = result[name]
        print(
            f"{name:8s} root-rel {m['kp3d_epe_mm']:.2f} mm, Z&B {m['zb_epe_mm']:.2f} mm "
            f"(AUC {m['zb_auc_20_50']:.3f}), Procrustes {m['pa_epe_mm']:.2f} mm, "
            f"2D {m['kp2d_epe_px']:.2f} px, worst 10% {m['worst_10pct_root_rel_mm']:.2f} mm"
        )


if __name__ == "__main__":
    app.run(main)
