"""Default training configuration of the hand mesh estimator: declares every key.

Variants import ``get_config`` and override values; they never add keys (the config is locked, so
a misspelt key is an error). Units: image sizes in pixels, loss thresholds in metres, steps count
optimiser updates.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Return the default (paper-scale, single dataset) configuration."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.depth = 18  # ResNet 10 | 18 | 34 | 50
    c.model.width = 64  # channels of the first ResNet stage
    c.model.head_width = 128  # fE2D decoder channels
    c.model.threshold = (
        0.5  # soft-argmax: fraction of the heatmap peak below which pixels are ignored
    )
    c.model.num_iterations = 3  # T, fE3D iterations
    c.model.hidden = 512  # fE3D MLP width
    c.model.conv_width = 128  # fE3D context-encoder channels
    c.model.dtype = "float32"  # float32 | bfloat16 (compute dtype; params stay float32)
    c.model.rot_repr = "quat"  # quat | 6d
    c.model.camera = "weak"  # weak | perspective (fProj with the crop's intrinsics K)
    c.model.num_betas = 0  # shape coefficients regressed; 0 = all of the hand model's
    c.model.init_fill = 0.65  # fraction of the crop the initial (mean) hand spans
    c.model.tips = ""  # fingertip preset of the MANO layer ("" = the model's own)

    c.data = ml_collections.ConfigDict()
    c.data.name = "synthetic"  # synthetic | rhd | stb | freihand
    c.data.train_split = "train"
    c.data.val_split = "val"
    c.data.image_size = 128  # square input crop, pixels (multiple of 32)
    c.data.num_workers = 0  # input-pipeline worker processes per host
    c.data.augment = True  # geometric/photometric augmentation of training crops
    c.data.crop_margin = 0.25  # crop box margin around the keypoints (hand_jax.data.crop)
    c.data.crop_scale = (0.9, 1.15)  # training crops: box side jitter (lo, hi), x the box
    c.data.crop_shift = 0.08  # training crops: max box centre shift per axis, x the side
    # More training data in the synthetic format (e.g. launch.augment's output), mixed in:
    # comma-separated dirs and their weights relative to the main data's 1.0 ("" = none).
    c.data.extra_dirs = ""
    c.data.extra_weights = ""

    c.loss = ml_collections.ConfigDict()
    c.loss.heatmap = 100.0  # heatmap MSE (fE2D)
    c.loss.e2d_keypoints = 1.0  # fE2D soft-argmax keypoints, ndc (integral regression)
    c.loss.mask = 1.0  # mask BCE (fE2D)
    c.loss.kp3d = 10.0  # root-relative 3D keypoints, per metre of mean error
    c.loss.kp2d = 1.0  # reprojected 2D keypoints, ndc
    c.loss.refine2d = 1.0  # 2D refiner outputs, ndc
    c.loss.silhouette = 1.0  # rendered silhouette vs mask (MSE)
    c.loss.pose_prior = 1e-2
    c.loss.shape_prior = 1e-2
    c.loss.rot_reg = 1e-1  # keeps the rotation parameter on its manifold
    c.loss.heatmap_sigma = 1.5  # target Gaussian std, heatmap pixels
    # always | never | threshold | step | threshold_or_step (hand_jax.train.losses.silhouette_gate)
    c.loss.silhouette_gate = "threshold_or_step"
    c.loss.silhouette_threshold = 0.025  # metres of running 3D keypoint loss
    c.loss.silhouette_start_step = 30_000  # "step": first step; "threshold_or_step": deadline
    c.loss.skeleton_ema = 0.98  # decay of the running 3D keypoint loss
    c.loss.silhouette_size = 64  # render resolution of the silhouette loss, pixels
    c.loss.silhouette_sigma = 1.0  # soft-rasterizer blur, pixels at silhouette_size
    c.loss.silhouette_last_only = False  # render only the last fE3D iteration

    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 500  # per stratified stage (each stage has its own schedule)
    c.optim.schedule = "cosine"  # cosine | constant, per stage
    c.optim.end_factor = 0.01  # final learning rate / peak (cosine)
    c.optim.weight_decay = 1e-4  # AdamW decoupled weight decay
    c.optim.grad_clip_norm = 1.0  # 0 disables

    c.train = ml_collections.ConfigDict()
    c.train.global_batch_size = 64
    c.train.num_steps = 100_000
    c.train.e2d_steps = 10_000  # stratified stage 1: fE2D alone
    c.train.e3d_steps = 10_000  # stage 2: fE3D on fE2D's evidence; then joint training
    c.train.color_jitter = 0.1  # on-device brightness/contrast jitter amplitude
    c.train.log_every = 100
    c.train.eval_every = 5000
    c.train.eval_examples = 512  # validation examples per evaluation (0 = whole split)
    c.train.png_examples = 8  # validation crops drawn in the evaluation PNG

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 1000  # steps between periodic saves
    c.checkpoint.keep = 3  # most recent checkpoints kept
    c.checkpoint.init_from = ""  # checkpoint or exported model dir (params only), if no resume
    return c
