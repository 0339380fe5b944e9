"""Self-data augmentation as a resumable job: fit a split, re-render it, write a dataset.

``augment_dataset`` fits every sample of a split (``hand_jax.augment.fit``), colours each kept
fit from its image (``texture``), renders ``views_per_sample`` new views of it (``views``) and
writes them as a dataset in the synthetic on-disk format (``hand_jax.data.synthetic``), so
``launch.train --data_dir=OUT`` (or a mixture, ``data.extra_dirs``) reads it with no new code.

Layout of the output (split name as the source's)::

    manifest.json         the synthetic manifest + "augment": source, checkpoint, settings,
                          fitted and skipped counts, fit quality
    train-00000-of-00004.npz ...   shards; sample index = source row * views_per_sample + view
    contact_sheet.png     per source row: the source crop | the fit | its new views

Resumable: the job writes into ``OUT.partial`` (a sibling), one shard per ``shard_size`` source
rows, each with a small JSON of its counts and its npz's checksum written after the npz; a rerun
with the same request, weights, data and hand model (``resume.fingerprint``) skips finished
shards whose files are intact and redoes the others, and the folder is renamed to ``OUT`` when
complete (the manifest then holds the counts, and the JSONs are removed). Sample k's views
depend only on (seed, k) and the fit of its shard, so an interrupted and resumed run writes the
same dataset as an uninterrupted one.
"""

import dataclasses
import json
import os
import time

import numpy as np
import tqdm

from hand_jax import data, outputs
from hand_jax import estimate as est_lib
from hand_jax.augment import fit as fit_lib
from hand_jax.augment import resume, sheet, texture, views
from hand_jax.data import synthetic

GENERATOR_VERSION = "augment-1"
PARTIAL_SUFFIX = resume.PARTIAL_SUFFIX


@dataclasses.dataclass(frozen=True)
class Request:
    """What one augmentation run does (its fingerprint decides whether a rerun may resume)."""

    checkpoint: str | None
    dataset: str
    data_dir: str
    split: str
    views_per_sample: int
    seed: int = 0
    count: int = 0  # source rows (0: all)
    shard_size: int = 256  # source rows per output shard
    view: views.ViewConfig = views.ViewConfig()
    fit: fit_lib.FitConfig = fit_lib.FitConfig()

    def as_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["data_dir"] = os.path.abspath(self.data_dir)
        if self.checkpoint is not None:
            out["checkpoint"] = os.path.abspath(self.checkpoint)
        return out


def check_request(r: Request, *, force_test: bool) -> None:
    """Raise ``ValueError`` naming the argument if the request cannot or must not run."""
    if r.split == "test" and not force_test:
        raise ValueError(
            "--split=test: self-data augmentation makes training data, and a test split must "
            "never be trained on (its numbers would no longer measure anything); pass "
            "--force_test only to study the method itself"
        )
    for key in ("views_per_sample", "shard_size"):
        value = getattr(r, key)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"--{key}={value!r}: expected an int > 0")
    for key in ("seed", "count"):
        value = getattr(r, key)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"--{key}={value!r}: expected an int >= 0")


def _fit_batch(estimate, net_rows, cfg: fit_lib.FitConfig, batch_size: int, num_betas: int):
    """Fit one batch of crops: per row (fitted hand, residual px, silhouette IoU, labelled)."""
    n = len(net_rows)
    pad = net_rows + [net_rows[-1]] * (batch_size - n)
    images = np.stack([s["image"] for s in pad])
    labelled = np.array([cfg.evidence == "labels" and fit_lib.has_labels(s) for s in pad])
    mask_size = estimate.silhouette.size
    results = {}
    for use_labels in (True, False):
        if not np.any(labelled == use_labels):
            continue
        evidence = fit_lib.label_evidence(pad, mask_size=mask_size) if use_labels else None
        Ks = np.stack([s["K"] for s in pad])
        out = estimate(images, evidence, K=Ks)
        residual, iou = fit_lib.fit_quality(out, out.evidence)
        hands = fit_lib.fitted_hands(out, estimate.network, num_betas=num_betas, K=Ks)
        results[use_labels] = (hands, residual, iou)
    rows = []
    for i in range(n):
        hands, residual, iou = results[bool(labelled[i])]
        rows.append((hands[i], float(residual[i]), float(iou[i]), bool(labelled[i])))
    return rows


def _source_background(tex_sample) -> np.ndarray:
    hole = np.asarray(tex_sample.get("mask_full", tex_sample["mask"])) > 0
    hole = hole | np.pad(hole, 2)[4:, 2:-2] | np.pad(hole, 2)[:-4, 2:-2]
    hole = hole | np.pad(hole, 2)[2:-2, 4:] | np.pad(hole, 2)[2:-2, :-4]
    return views.fill_hole(tex_sample["image"] / 255.0, hole)


def _augment_row(r: Request, model, fitted, tex_sample, row: int, scale: float):
    """New views (samples) of one kept fit, and the fit as the contact sheet shows it."""
    screen = fitted["screen"] * np.array([scale, scale, 1.0])
    faces = np.asarray(model.faces)
    colours, _ = texture.texture_from_image(tex_sample["image"], screen, faces, perspective=False)
    fitted = dict(fitted, colours=colours, screen=screen)
    if r.view.background == "source":
        fitted["background"] = _source_background(tex_sample)
    rng = np.random.default_rng([r.seed, row])
    drawn = views.draw_views(model, fitted, rng, r.view, count=r.views_per_sample)
    samples = views.render_posed(model, colours, drawn, rng, r.view, id_prefix=f"aug/{row}")
    return samples, fitted


def _shard_rows(r: Request, total: int) -> list[range]:
    return [range(a, min(total, a + r.shard_size)) for a in range(0, total, r.shard_size)]


def _rejection(cfg: fit_lib.FitConfig, residual: float, iou: float) -> str | None:
    """Why a fit is skipped (the ``stats`` counter to raise), or None when it is kept."""
    if residual > cfg.max_keypoint_px:
        return "skipped_keypoints"
    if iou < cfg.min_silhouette_iou:
        return "skipped_silhouette"
    return None


def _run_shard(r, estimate, model, net, tex, rows, *, batch_size, bar) -> dict:
    """Fit, texture and render one shard's source rows; return its samples and counts."""
    cfg, scale = r.fit, r.view.image_size / estimate.network.image_size
    samples, indices, stats = [], [], {"rows": len(rows), "skipped_keypoints": 0,
                                       "skipped_silhouette": 0, "labels": 0, "network": 0,
                                       "residual_px": [], "iou": []}  # fmt: skip
    for start in range(0, len(rows), batch_size):
        part = list(rows[start : start + batch_size])
        fits = _fit_batch(estimate, [net[k] for k in part], cfg, batch_size, model.num_betas)
        for k, (fitted, residual, iou, labelled) in zip(part, fits, strict=True):
            stats["labels" if labelled else "network"] += 1
            stats["residual_px"].append(residual)
            stats["iou"].append(iou)
            bar.update(1)
            reason = _rejection(cfg, residual, iou)
            if reason is not None:
                stats[reason] += 1
                continue
            new, _ = _augment_row(r, model, fitted, tex[k], k, scale)
            samples += new
            indices += [k * r.views_per_sample + v for v in range(len(new))]
    return {"samples": samples, "indices": indices, "stats": stats}


def _write_shard(partial: str, r: Request, k: int, num_shards: int, res: dict) -> None:
    """Write shard k's npz (if it has samples), then its counts (the mark that it is done)."""
    entry = {"file": None, "count": len(res["samples"]), "stats": res["stats"]}
    if res["samples"]:
        entry["file"] = synthetic.shard_name(r.split, k, num_shards)
        entry["first_index"] = int(res["indices"][0])
        shard = os.path.join(partial, entry["file"])
        synthetic.write_shard(shard, res["samples"], res["indices"])
        entry["sha256"] = resume.file_sha256(shard)
    path = os.path.join(partial, f"shard-{k:05d}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(entry, f)
    os.replace(path + ".tmp", path)


def _summary(entries: list[dict]) -> dict:
    stats = [e["stats"] for e in entries]
    residual = np.concatenate([s["residual_px"] for s in stats]) if stats else np.zeros(0)
    iou = np.concatenate([s["iou"] for s in stats]) if stats else np.zeros(0)
    out = {
        k: int(sum(s[k] for s in stats))
        for k in ("rows", "skipped_keypoints", "skipped_silhouette", "labels", "network")
    }
    out["fitted"] = out["rows"] - out["skipped_keypoints"] - out["skipped_silhouette"]
    out["median_residual_px"] = float(np.median(residual)) if residual.size else None
    out["median_silhouette_iou"] = float(np.median(iou)) if iou.size else None
    return out


def _manifest(r: Request, model, entries: list[dict], wall_s: float) -> dict:
    shards = [{k: e[k] for k in ("file", "count", "first_index")} for e in entries if e["file"]]
    return {
        "format": synthetic.FORMAT, "format_version": synthetic.FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION, "seed": r.seed, "image_size": r.view.image_size,
        "parameters": {"views_per_sample": r.views_per_sample,
                       "view": dataclasses.asdict(r.view), "fit": dataclasses.asdict(r.fit)},
        "model": {"side": model.side, "num_verts": model.num_verts,
                  "num_betas": model.num_betas},
        "keypoint_order": "canonical (OpenPose/FreiHAND, hand_jax.keypoints)",
        "splits": {r.split: {"count": sum(s["count"] for s in shards), "shards": shards}},
        "augment": {"request": r.as_json(), **_summary(entries), "wall_s": round(wall_s, 1)},
    }  # fmt: skip


def _sheet(r, estimate, model, net, tex, path, *, count: int, batch_size: int) -> None:
    """Contact sheet of the first ``count`` kept rows (refitted: the fits are deterministic)."""
    rows, scale = [], r.view.image_size / estimate.network.image_size
    part = list(range(min(len(net), count if not r.count else min(count, r.count))))
    if not part:
        return
    fits = _fit_batch(estimate, [net[k] for k in part], r.fit, batch_size, model.num_betas)
    for k, (fitted, residual, iou, _) in zip(part, fits, strict=True):
        if _rejection(r.fit, residual, iou) is None:
            new, fitted = _augment_row(r, model, fitted, tex[k], k, scale)
            rows.append((tex[k], fitted, new))
    if rows:
        sheet.save_sheet(rows, np.asarray(model.faces), path)


def augment_dataset(
    r: Request,
    *,
    out_dir: str,
    overwrite: bool = False,
    force_test: bool = False,
    batch_size: int = 32,
    sheet_count: int = 6,
    progress: bool = True,
    mano_path: str | None = None,
    network: est_lib.Network | None = None,
) -> dict:
    """Fit, texture and re-render a split into a new dataset at ``out_dir`` (module docstring).

    Args:
      r: the request (source, checkpoint, views per sample, seed, view and fit settings).
      out_dir: output folder; refused when not empty unless ``overwrite``.
      overwrite: replace ``out_dir`` (and an unfinished run of other settings).
      force_test: allow a test split (refused otherwise: test data is never trained on).
      batch_size: crops per compiled fit call.
      sheet_count: source rows on the contact sheet (0: none).
      progress: a progress bar over the source rows.
      mano_path: the hand model the checkpoint was trained with (None: the embedded hand).
      network: an in-memory ``estimate.Network`` to use instead of ``r.checkpoint``.

    Returns:
      The manifest written to ``out_dir/manifest.json``.
    """
    check_request(r, force_test=force_test)
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=[r.data_dir, r.checkpoint])
    if network is None:
        network = est_lib.load_network(r.checkpoint, mano_path=mano_path)
    body = resume.fingerprint(r.as_json(), variables=network.variables, data_dir=r.data_dir,
                              mano_path=mano_path)  # fmt: skip
    partial = resume.prepare_partial(out_dir, body, overwrite=overwrite,
                                     inputs=[r.data_dir, r.checkpoint])  # fmt: skip
    estimate = est_lib.make_estimate_fn(
        network, refine_steps=r.fit.refine_steps, learning_rate=r.fit.learning_rate
    )
    model = network.consts.hand_model
    load = {"crop_margin": network.crop_margin}
    net = data.load_split(r.dataset, r.data_dir, r.split, crop_size=network.image_size, **load)
    tex = data.load_split(r.dataset, r.data_dir, r.split, crop_size=r.view.image_size, **load)
    total = len(net) if not r.count else min(r.count, len(net))
    shards, start, entries = _shard_rows(r, total), time.perf_counter(), []
    with tqdm.tqdm(total=total, unit="sample", disable=not progress) as bar:
        for k, rows in enumerate(shards):
            done = os.path.join(partial, f"shard-{k:05d}.json")
            entry = resume.finished_shard(partial, done)
            if entry is None:  # not done, or its file is missing or not the one it wrote
                res = _run_shard(r, estimate, model, net, tex, rows, batch_size=batch_size, bar=bar)
                _write_shard(partial, r, k, len(shards), res)
                entry = resume.finished_shard(partial, done)
            else:
                bar.update(len(rows))
            entries.append(entry)
    manifest = _manifest(r, model, entries, time.perf_counter() - start)
    if sheet_count:
        path = os.path.join(partial, "contact_sheet.png")
        _sheet(r, estimate, model, net, tex, path, count=sheet_count, batch_size=batch_size)
    with open(os.path.join(partial, synthetic.MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    for k in range(len(shards)):  # the manifest now holds what these recorded
        os.remove(os.path.join(partial, f"shard-{k:05d}.json"))
    os.remove(os.path.join(partial, resume.REQUEST))
    outputs.swap_in(partial, out_dir, overwrite=overwrite)
    return manifest
