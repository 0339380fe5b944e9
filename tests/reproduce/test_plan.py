"""The study's stages: each row's model is trained and scored as the row says."""

import pytest

from hand_jax.reproduce import plan
from launch.configs import reproduce as presets


def _stages(preset="quick", data_dirs=None, tmp="/tmp/w"):
    cfg = presets.get_config(preset)
    paths = plan.Paths(tmp, tmp + "_out", data_dirs or {})
    return cfg, {s.name: s for s in plan.build(cfg, paths)}


def _args(stage):
    return stage.inputs["args"]


def test_each_model_is_trained_with_its_rows_settings():
    _, stages = _stages()
    skeleton = _args(stages["train/seed0/narrow/skeleton"])
    assert "--config.loss.silhouette_gate=never" in skeleton
    full = _args(stages["train/seed0/narrow/full"])
    assert not any("silhouette_gate" in a or "e2d_steps=0" in a for a in full)
    direct = _args(stages["train/seed0/narrow/direct"])
    assert {"--config.train.e2d_steps=0", "--config.train.e3d_steps=0"} <= set(direct)
    # The preset's overrides come first, the row's last: the row's settings win.
    assert direct.index("--config.train.e2d_steps=0") > direct.index("--config.train.e2d_steps=60")
    selfaug = stages["train/seed0/narrow/selfaug"]
    assert any(a.startswith("--config.data.extra_dirs=") for a in _args(selfaug))
    assert "augment/seed0/narrow" in selfaug.deps
    assert stages["augment/seed0/narrow"].deps == ("train/seed0/narrow/full",)


def test_refinement_is_evaluated_only_where_a_row_uses_it():
    cfg, stages = _stages("cpu")
    for seed in cfg.seeds:
        for column in cfg.data.columns:
            for model in plan.MODELS:
                steps = stages[f"evaluate/seed{seed}/{model}/{column}"].inputs["refine_steps"]
                assert steps == (30 if model in ("full", "selfaug") else 0)
    for _, model, variant in plan.ROWS.values():
        if variant == "refined":
            assert model in plan.REFINED_MODELS


def test_seeds_never_share_a_run_and_augmentation_trains_on_the_training_split():
    cfg, stages = _stages("cpu")
    workdirs = [s.outputs[0] for s in stages.values() if s.kind == "train"]
    assert len(workdirs) == len(set(workdirs)) == 4 * len(cfg.seeds)
    for seed in cfg.seeds:
        assert f"--config.seed={seed}" in _args(stages[f"train/seed{seed}/narrow/full"])
        assert "--split=train" in _args(stages[f"augment/seed{seed}/narrow"])
    assert all(s.inputs["split"] == "test" for s in stages.values() if s.kind == "evaluate")


def test_paper_preset_needs_each_dataset_root():
    with pytest.raises(ValueError, match="stb"):
        _stages("paper")
    dirs = {"stb": "/d/stb", "rhd": "/d/rhd", "dexter_object": "/d/do"}
    _, stages = _stages("paper", dirs)
    args = _args(stages["train/seed0/stb/full"])
    # STB publishes no validation split: train on the loader's train_fit, validate on its val
    # (the training config's default val_split).
    assert {"--config.data.name=stb", "--config.data.train_split=train_fit"} <= set(args)
    assert not any(a.startswith("--config.data.val_split") for a in args)
    assert "--split=train_fit" in _args(stages["augment/seed0/stb"])
    assert "evaluate/seed0/full/dexter_object" in stages
    assert stages["evaluate/seed0/full/dexter_object"].deps == ("train/seed0/stb/full",)
    assert not any(name.startswith("data/") for name in stages)  # nothing generated


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="quick"):
        presets.get_config("fast")
