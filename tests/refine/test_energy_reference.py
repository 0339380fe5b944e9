"""Refinement energy against a plain-numpy reference of every term; 6D and PCA refinement.

The reference below re-derives each term of the energy (``hand_jax/refine/energy.py``) from its
documented definition, in float64, with loops where that is clearer:

    keypoints  = sum_k c_k |kp2d_k - j2D_k|^2 / S^2     (non-finite keypoints/confidences: c_k = 0)
    silhouette = sum_p w_p d(A_p, F_p) / max(sum_p w_p, 1)  (w_p = 0 on non-finite mask pixels)
                 d = (A - F)^2 (L2) or -(F log A + (1 - F) log(1 - A)) (BCE, A clipped to
                 [1e-6, 1 - 1e-6] in float32 so that the log stays finite)
    shape      = |betas|^2
    pose       = |pose - hands_mean|^2 for [45] axis-angle, |coeffs|^2 for PCA coefficients
    proximity  = sum over every parameter group of |h - h0|^2

Only the rendered silhouette A and the projected keypoints kp2d come from the library
(``silhouette_and_keypoints``, tested against its own references elsewhere): what is under test
here is the energy's arithmetic.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano, refine
from hand_jax.geometry import rotations

SIZE = 32
SIGMA = 1.0
# The BCE clip [1e-6, 1 - 1e-6] as float32 numbers (1 - 1e-6 rounds to 1 - 1.013e-6 in float32,
# which moves log(1 - A) of a fully covered pixel by 1%).
_EPS_LO, _EPS_HI = float(np.float32(1e-6)), float(np.float32(1.0 - 1e-6))


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


def _reference_terms(model, params, evidence, init, *, alpha, kp2d, image_size, kind):
    """Plain-numpy energy terms of one example (float64)."""
    kp = np.asarray(evidence.keypoints_2d, np.float64)
    conf = np.asarray(evidence.confidence, np.float64)
    kp2d = np.asarray(kp2d, np.float64)
    keypoints = 0.0
    for k in range(kp.shape[0]):
        if not (np.all(np.isfinite(kp[k])) and np.isfinite(conf[k])):
            continue
        c = min(max(conf[k], 0.0), 1.0)
        du, dv = kp2d[k] - kp[k]
        keypoints += c * (du * du + dv * dv) / image_size**2

    mask = np.asarray(evidence.mask, np.float64)
    a = np.asarray(alpha, np.float64)
    total, weight = 0.0, 0.0
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if not np.isfinite(mask[i, j]):
                continue
            f = min(max(mask[i, j], 0.0), 1.0)
            if kind == "l2":
                d = (a[i, j] - f) ** 2
            else:
                p = min(max(a[i, j], _EPS_LO), _EPS_HI)
                d = -(f * np.log(p) + (1.0 - f) * np.log(1.0 - p))
            total += d
            weight += 1.0
    silhouette = total / max(weight, 1.0)

    pose = np.asarray(params.pose, np.float64)
    mean = np.asarray(model.hands_mean, np.float64) if pose.shape[0] == 45 else 0.0
    proximity = sum(
        float(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
        for x, y in zip(params, init, strict=True)
    )
    return {
        "keypoints": keypoints,
        "silhouette": silhouette,
        "shape": float(np.sum(np.asarray(params.betas, np.float64) ** 2)),
        "pose": float(np.sum((pose - mean) ** 2)),
        "proximity": proximity,
    }


def _random_problem(model, seed, *, rotation, num_pca, perspective):
    """Random parameters, a random initial estimate and random (partly non-finite) evidence."""
    rng = np.random.default_rng(seed)
    base = refine.default_params(model, rotation=rotation)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    rot = np.asarray(base.global_rot) + rng.normal(0, 0.05, base.global_rot.shape)
    if num_pca:
        pose = rng.normal(0, 0.8, num_pca)
    else:
        pose = np.asarray(model.hands_mean) + rng.normal(0, 0.2, 45)
    betas = rng.normal(0, 1.0, base.betas.shape)
    cam = np.asarray(base.cam) * (1 + rng.normal(0, 0.03, 3))
    params = refine.HandParams(f32(rot), f32(pose), f32(betas), f32(cam))
    K = None
    if perspective:
        f = 1.4 * SIZE
        K = np.array([[f, 0, SIZE / 2 + 1.5], [0, 1.05 * f, SIZE / 2 - 2], [0, 0, 1]], np.float32)
        # A perspective ``cam`` is the wrist's translation: put the hand ~0.35 m away.
        params = params._replace(cam=f32([0.01, -0.02, 0.35]))
    init = refine.HandParams(*(x + f32(rng.normal(0, 0.1, x.shape)) for x in params))

    kp = rng.uniform(0, SIZE, (21, 2))
    kp[4, 1] = np.nan  # a NaN keypoint: ignored
    conf = rng.uniform(0, 1, 21)
    conf[9] = np.inf  # a non-finite confidence: ignored
    conf[11] = 0.0
    mask = rng.uniform(0, 1, (SIZE, SIZE))
    mask[rng.uniform(size=mask.shape) < 0.3] = rng.integers(0, 2, (SIZE, SIZE))[:1].mean()
    mask[3, 5] = np.nan  # a non-finite pixel: zero weight
    mask[7, 1] = -np.inf
    evidence = refine.Evidence(f32(kp), f32(conf), f32(mask), None if K is None else f32(K))
    return params, init, evidence


CASES = [
    # (rotation, PCA coefficients or 0 for [45] axis-angle, perspective camera, silhouette loss)
    ("quaternion", 0, False, "l2"),
    ("quaternion", 0, False, "bce"),
    ("6d", 12, False, "bce"),
    ("quaternion", 0, True, "l2"),
    ("6d", 0, True, "bce"),
]


@pytest.mark.parametrize("rotation, num_pca, perspective, kind", CASES)
def test_energy_terms_match_numpy_reference(model, rotation, num_pca, perspective, kind):
    seed = hash((rotation, num_pca, perspective, kind)) % 1000
    params, init, evidence = _random_problem(
        model, seed, rotation=rotation, num_pca=num_pca, perspective=perspective
    )
    assert np.abs(np.asarray(model.hands_mean)).max() > 0.05  # the pose prior's centre matters
    terms = jax.jit(
        functools.partial(refine.energy_terms, image_size=SIZE, sigma=SIGMA, silhouette_loss=kind)
    )(model, params, evidence, init)
    _, alpha, kp2d = refine.silhouette_and_keypoints(
        model, params, image_size=SIZE, sigma=SIGMA, K=evidence.K
    )
    alpha = np.asarray(alpha)
    # The silhouette must cover part of the crop, or the silhouette term tests little.
    assert 0.05 < np.mean(alpha > 0.5) < 0.9
    want = _reference_terms(
        model, params, evidence, init, alpha=alpha, kp2d=kp2d, image_size=SIZE, kind=kind
    )
    assert float(terms.pop("keypoints_3d")) == 0.0  # no 3D evidence given
    assert set(terms) == set(want)
    for name, value in want.items():
        assert value > 1e-3, name  # every term is exercised
        np.testing.assert_allclose(float(terms[name]), value, rtol=2e-5, err_msg=name)


def test_bce_is_lowest_where_the_silhouette_agrees(model):
    """BCE against the rendered silhouette itself beats BCE against its complement."""
    params, init, evidence = _random_problem(
        model, 5, rotation="quaternion", num_pca=0, perspective=False
    )
    _, alpha, _ = refine.silhouette_and_keypoints(model, params, image_size=SIZE, sigma=SIGMA)
    hard = (alpha > 0.5).astype(jnp.float32)
    terms = functools.partial(
        refine.energy_terms, model, params, init_params=init, image_size=SIZE, sigma=SIGMA,
        silhouette_loss="bce",
    )  # fmt: skip
    agree = float(terms(evidence._replace(mask=hard))["silhouette"])
    disagree = float(terms(evidence._replace(mask=1.0 - hard))["silhouette"])
    assert agree < 0.25 < 2.0 < disagree


def test_energy_terms_reject_unknown_silhouette_loss(model):
    params, init, evidence = _random_problem(
        model, 0, rotation="quaternion", num_pca=0, perspective=False
    )
    with pytest.raises(ValueError, match="^silhouette_loss: expected 'l2' or 'bce', got 'huber'$"):
        refine.energy_terms(model, params, evidence, init, image_size=SIZE, silhouette_loss="huber")


def test_refine_fn_initial_energy_is_the_weighted_reference_sum(model):
    """The optimiser's energy at the initial estimate is sum_k w_k term_k (proximity 0 there)."""
    params, _, evidence = _random_problem(
        model, 3, rotation="quaternion", num_pca=0, perspective=False
    )
    weights = {"keypoints": 2.0, "silhouette": 0.5, "shape": 0.01, "pose": 0.02, "proximity": 3}
    fn = refine.make_refine_fn(model, num_steps=1, image_size=SIZE, weights=weights)
    out = fn(*jax.tree.map(lambda x: x[None], (params, evidence)))
    _, alpha, kp2d = refine.silhouette_and_keypoints(model, params, image_size=SIZE, sigma=1.0)
    want = _reference_terms(
        model, params, evidence, params, alpha=alpha, kp2d=kp2d, image_size=SIZE, kind="l2"
    )
    total = sum(weights[k] * want[k] for k in want)
    np.testing.assert_allclose(float(out.losses[0, 0]), total, rtol=2e-5)


# Refinement with a 6D global rotation and with PCA articulation, on exact evidence.


def _rotation_angle(a, b):
    """Angle (radians) of the relative rotation between two [3, 3] rotation matrices."""
    r = np.asarray(a, np.float64).T @ np.asarray(b, np.float64)
    return float(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))


def _kp_error(model, params, evidence):
    kp2d = jax.vmap(lambda p: refine.forward(model, p, image_size=SIZE)[2])(params)
    return np.asarray(jnp.linalg.norm(kp2d - evidence.keypoints_2d, axis=-1).mean(-1))


def _exact_evidence(model, gt):
    return jax.vmap(lambda p: refine.render_evidence(model, p, image_size=SIZE, sigma=SIGMA))(gt)


def test_refinement_with_6d_rotation_recovers_a_known_rotation(model):
    # In-plane turns (about the camera axis) of the 6D global rotation: observable under weak
    # perspective (an out-of-plane turn trades off against the articulation).
    base = refine.default_params(model, rotation="6d")
    assert base.global_rot.shape == (6,)
    rng = np.random.default_rng(0)
    gt_rot = np.asarray(rotations.rotation_6d_to_matrix(base.global_rot))
    gt, init, angles = [], [], []
    for angle in (0.3, -0.2):
        turn = rotations.axis_angle_to_matrix(jnp.asarray([0.0, 0.0, angle], jnp.float32))
        pose = base.pose + jnp.asarray(rng.normal(0, 0.05, 45), jnp.float32)
        p = base._replace(pose=pose)
        gt.append(p)
        wrong = rotations.matrix_to_rotation_6d(turn @ jnp.asarray(gt_rot))
        init.append(p._replace(global_rot=wrong))
        angles.append(_rotation_angle(rotations.rotation_6d_to_matrix(wrong), gt_rot))
    np.testing.assert_allclose(angles, [0.3, 0.2], rtol=1e-4)
    gt, init = (jax.tree.map(lambda *x: jnp.stack(x), *ps) for ps in (gt, init))
    evidence = _exact_evidence(model, gt)
    out = refine.make_refine_fn(model, num_steps=120, image_size=SIZE, sigma=SIGMA)(init, evidence)
    losses = np.asarray(out.losses)
    assert np.all(np.asarray(out.best_loss) < 0.1 * losses[:, 0]), losses[:, [0, -1]]
    before, after = _kp_error(model, init, evidence), _kp_error(model, out.best_params, evidence)
    assert np.all(after < 0.15 * before), (before, after)
    for i in range(2):
        best = rotations.rotation_6d_to_matrix(out.best_params.global_rot[i])
        err = _rotation_angle(best, gt_rot)
        assert err < 0.3 * angles[i], (i, angles[i], err)


def test_refinement_with_pca_pose_recovers_known_coefficients(model):
    # The perturbation lies along the best-observed directions of the PCA coefficients (the top
    # right singular vectors of d kp2d / d coeffs at the ground truth): some directions barely
    # move the 2D keypoints and are not identifiable from 2D evidence.
    num_pca = 6
    base = refine.default_params(model)
    rng = np.random.default_rng(1)
    gt_coeffs = jnp.asarray(rng.normal(0, 0.5, (2, num_pca)), jnp.float32)
    offsets = []
    for i, scale in enumerate(((0.8, 0.0), (0.5, 0.5))):
        kp = lambda c: refine.forward(model, base._replace(pose=c), image_size=SIZE)[2]  # noqa: E731
        jac = np.asarray(jax.jacobian(kp)(gt_coeffs[i])).reshape(-1, num_pca)
        vt = np.linalg.svd(jac)[2]
        offsets.append(scale[0] * vt[0] + scale[1] * vt[1])
    gt = jax.tree.map(lambda x: jnp.stack([x, x]), base)._replace(pose=gt_coeffs)
    init = gt._replace(pose=gt_coeffs + jnp.asarray(np.stack(offsets), jnp.float32))
    evidence = _exact_evidence(model, gt)
    out = refine.make_refine_fn(model, num_steps=60, image_size=SIZE, sigma=SIGMA)(init, evidence)
    assert out.best_params.pose.shape == (2, num_pca)
    losses = np.asarray(out.losses)
    assert np.all(np.asarray(out.best_loss) < 0.2 * losses[:, 0]), losses[:, [0, -1]]
    before, after = _kp_error(model, init, evidence), _kp_error(model, out.best_params, evidence)
    assert np.all(after < 0.3 * before), (before, after)
    err0 = np.linalg.norm(np.asarray(init.pose - gt.pose), axis=-1)
    err1 = np.linalg.norm(np.asarray(out.best_params.pose - gt.pose), axis=-1)
    assert np.all(err1 < 0.5 * err0), (err0, err1)
