"""Peak memory of the photo and npz readers on hostile-but-small files, in child processes.

    python benchmarks/reader_budgets.py --tree . [--cap_gb 12]

``--tree`` is the source tree to import ``hand_jax`` from (the working tree, or an export of an
older commit: ``git archive HEAD | tar -x -C /tmp/oldtree``). Each case runs in a fresh child
that imports the module first, then caps its address space at (current + cap_gb) so an old
reader fails with MemoryError instead of exhausting a shared machine; the reported number is
the growth of the child's peak RSS (``ru_maxrss``) during the read.
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np
from PIL import Image

CHILD = r"""
import resource, sys, time
sys.path.insert(0, {tree!r})
{imports}
def vm_bytes():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize"))
cap = vm_bytes() + int({cap_gb} * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    out = {call}
    outcome = "returned " + str(getattr(out, "shape", type(out).__name__))
except BaseException as e:
    outcome = f"{{type(e).__name__}}: {{str(e)[-150:]}}"
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2**10
print(f"{{peak:8.0f}} MB peak RSS growth  {{time.perf_counter() - start:6.2f}} s  {{outcome}}")
"""


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, width, height, channels=4):
    """A valid 8-bit PNG of transparent black pixels (RGBA), streamed row by row."""
    colour_type = {3: 2, 4: 6}[channels]
    packer, row = zlib.compressobj(9), bytes(1 + channels * width)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)))
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
        f.write(_chunk(b"IDAT", data) + _chunk(b"IEND", b""))


def write_gif(path, side=1000, frames=100):
    images = [Image.new("P", (side, side), i % 4) for i in range(frames)]
    for image in images:
        image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    images[0].save(path, save_all=True, append_images=images[1:], duration=40)


def write_npz(path, members):
    """Members {key: array | bytes | ("zeros", descr, shape)} (see tests/npz_helpers.py)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in members.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as f:
                if isinstance(value, bytes):
                    f.write(value)
                elif isinstance(value, tuple):
                    _, descr, shape = value
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": descr, "fortran_order": False, "shape": shape}
                    )
                    left, chunk = int(np.prod(shape)) * np.dtype(descr).itemsize, bytes(1 << 20)
                    while left > 0:
                        f.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)
                else:
                    np.lib.format.write_array(f, np.asarray(value))


def forged_header(shape):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + bytes(64)


def cases(folder):
    png, gif = os.path.join(folder, "huge.png"), os.path.join(folder, "anim.gif")
    jpeg = os.path.join(folder, "phone.jpg")
    unused, forged = os.path.join(folder, "unused.npz"), os.path.join(folder, "forged.npz")
    write_png(png, 12000, 12000)
    write_gif(gif)
    Image.effect_noise((8000, 6000), 64).convert("RGB").save(jpeg, quality=90)
    params = {"params/w": np.ones((3, 4), np.float16)}
    write_npz(unused, {**params, "params/extra": ("zeros", "<f4", (325_000_000,))})
    write_npz(forged, {"params/w": forged_header((10**12,))})
    photo = "from hand_jax.estimate import photos"
    store = "import jax, numpy as np\nfrom hand_jax.network import store"
    npz = "from hand_jax import safe_npz"
    abstract = "{{'params': {{'w': jax.ShapeDtypeStruct({}, np.float32)}}, 'batch_stats': {{}}}}"
    return [
        (f"144 Mpx RGBA PNG ({os.path.getsize(png) / 1e6:.2f} MB)", photo,
         f"photos.read_photo({png!r})"),
        (f"48 Mpx RGB JPEG, under the budget ({os.path.getsize(jpeg) / 1e6:.1f} MB)", photo,
         f"photos.read_photo({jpeg!r})"),
        (f"animated GIF, 100 frames 1000x1000 ({os.path.getsize(gif) / 1e3:.0f} KB)", photo,
         f"photos.read_photo({gif!r})"),
        (f"params npz, unused 1.3 GB member ({os.path.getsize(unused) / 1e6:.2f} MB), "
         "store.load_params", store, f"store.load_params({unused!r}, {abstract.format((3, 4))})"),
        ("same npz, safe_npz.read_npz() reading every member", npz,
         f"safe_npz.read_npz({unused!r})"),
        ("same npz, safe_npz.read_npz(expected=params/w)", npz,
         f"safe_npz.read_npz({unused!r}, expected={{'params/w': (None, None)}})"),
        ("params npz, member declaring 10^12 float32, store.load_params", store,
         f"store.load_params({forged!r}, {abstract.format((10**12,))})"),
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", required=True)
    parser.add_argument("--cap_gb", type=float, default=12)
    args = parser.parse_args()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    with tempfile.TemporaryDirectory() as folder:
        for name, imports, call in cases(folder):
            code = CHILD.format(tree=args.tree, imports=imports, call=call, cap_gb=args.cap_gb)
            run = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env,
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
            print(f"{name}:\n  {(run.stdout or run.stderr[-300:]).strip()}", flush=True)


if __name__ == "__main__":
    main()
