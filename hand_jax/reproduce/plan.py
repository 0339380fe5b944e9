"""The study as stages: data, per seed the models of the ablation rows, evaluation, figures.

Layout of the work folder (``work_dir``)::

    data/<set>/                        generated synthetic sets (given sets stay where they are)
    seed<s>/<train set>/<model>/       training runs (``launch.train --workdir``)
    seed<s>/<train set>/aug/           self-augmented data of the "full" model
    seed<s>/<train set>/eval/<model>/<column>/   ``evaluate_split``: network/, refined/
    logs/<stage>.log                   each launcher's output
    stages/                            the runner's markers (``hand_jax.reproduce.stages``)

Rows of the ablation (``ROWS``) map to a trained model and a variant of its evaluation: the
network's estimate, or the estimate after test-time refinement against the network's own
evidence (``hand_jax.estimate``). Heavy stages run the project's launchers as subprocesses
(``launch.make_synthetic``, ``launch.train``, ``launch.augment``), so each is the command a user
would run and its memory is freed when it ends; evaluation and figures run in this process.
"""

import os
import subprocess
import sys

from hand_jax.reproduce import stages as st

# Rows: key -> (label, model, variant).
ROWS = {
    "a": ("(a) 2D + 3D skeleton losses", "skeleton", "network"),
    "b": ("(b) (a) + mask loss (neural renderer)", "full", "network"),
    "c": ("(c) (b) + test-time refinement", "full", "refined"),
    "d": ("(d) (c) + self-data augmentation", "selfaug", "refined"),
    "e": ("(e) (b) trained directly, not stratified", "direct", "network"),
}
# Models: name -> training-config overrides on top of the preset's. "selfaug" also mixes in the
# self-augmented data of the "full" model of the same seed.
MODELS = {
    "skeleton": ("--config.loss.silhouette_gate=never",),
    "full": (),
    "direct": ("--config.train.e2d_steps=0", "--config.train.e3d_steps=0"),
    "selfaug": (),
}
REFINED_MODELS = ("full", "selfaug")  # models whose refined variant is a row
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_launcher(args: list[str], log_path: str) -> None:
    """Run ``python -m <args>`` from the project root, appending its output to ``log_path``."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    )
    with open(log_path, "a") as f:
        f.write(f"$ python -m {' '.join(args)}\n")
        f.flush()
        done = subprocess.run(
            [sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
    if done.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{args[0]} failed (exit {done.returncode}); log {log_path}:\n{tail}")


class Paths:
    """Where the study's files go (see the module docstring)."""

    def __init__(self, work_dir: str, out_dir: str, data_dirs: dict):
        self.work = os.path.abspath(work_dir)
        self.out = os.path.abspath(out_dir)
        self.given = {k: os.path.abspath(v) for k, v in data_dirs.items()}

    def data(self, name: str, kind: str) -> str:
        if kind == "given":
            if name not in self.given:
                raise ValueError(f"--data_dirs: no folder given for dataset {name!r}")
            return self.given[name]
        return os.path.join(self.work, "data", name)

    def run(self, seed, train, model) -> str:
        return os.path.join(self.work, f"seed{seed}", train, model)

    def aug(self, seed, train) -> str:
        return os.path.join(self.work, f"seed{seed}", train, "aug")

    def eval(self, seed, train, model, column) -> str:
        return os.path.join(self.work, f"seed{seed}", train, "eval", model, column)

    def log(self, name: str) -> str:
        return os.path.join(self.work, "logs", name.replace("/", "__") + ".log")


def _given(cfg, paths: Paths, *names) -> dict:
    """Key inputs for given (real) datasets: their roots (synthetic sets enter as stages)."""
    roots = {n: paths.data(n, "given") for n in names if cfg.data.sets[n].kind == "given"}
    return {"data_dirs": roots} if roots else {}


def _has(*parts) -> bool:
    return os.path.exists(os.path.join(*parts))


def data_stages(cfg, paths: Paths) -> list[st.Stage]:
    """Generate every synthetic set (given sets need no stage)."""
    out = []
    for name, spec in cfg.data.sets.items():
        if spec.kind != "synthetic":
            continue
        folder = paths.data(name, "synthetic")
        args = [
            "launch.make_synthetic",
            f"--out_dir={folder}",
            f"--views={spec.views}",
            f"--num_train={spec.num_train}",
            f"--num_val={spec.num_val}",
            f"--num_test={spec.num_test}",
            f"--seed={spec.seed}",
            f"--image_size={spec.image_size}",
            "--progress=false",
            "--contact_sheet=16",
            "--overwrite",
        ]
        stage = f"data/{name}"
        out.append(
            st.Stage(
                stage,
                "data",
                lambda a=args, s=stage: run_launcher(a, paths.log(s)),
                outputs=(folder,),
                inputs={"args": args[2:]},
                complete=lambda f=folder: _has(f, "manifest.json"),
            )
        )
    return out


def _split_overrides(cfg) -> list[str]:
    """The training splits, where they differ from the training config's ("train", "val")."""
    out = []
    for key, default in (("train_split", "train"), ("val_split", "val")):
        if cfg.data[key] != default:
            out.append(f"--config.data.{key}={cfg.data[key]}")
    return out


def _train_stage(cfg, paths, seed, train, model) -> st.Stage:
    spec = cfg.data.sets[train]
    workdir = paths.run(seed, train, model)
    args = [
        "launch.train",
        f"--config={cfg.train.config}",
        f"--config.seed={seed}",
        f"--config.data.name={spec.loader}",
        *_split_overrides(cfg),
        *cfg.train.overrides,
        *MODELS[model],
    ]
    deps = [f"data/{train}"] if spec.kind == "synthetic" else []
    if model == "selfaug":
        args += [
            f"--config.data.extra_dirs={paths.aug(seed, train)}",
            f"--config.data.extra_weights={cfg.augment.weight}",
        ]
        deps.append(f"augment/seed{seed}/{train}")
    name = f"train/seed{seed}/{train}/{model}"
    full = [*args, f"--workdir={workdir}", f"--data_dir={paths.data(train, spec.kind)}"]
    return st.Stage(
        name,
        "train",
        lambda: run_launcher(full, paths.log(name)),
        outputs=(workdir,),
        inputs={"args": args[1:], **_given(cfg, paths, train)},
        deps=tuple(deps),
        resumable=True,
    )


def _augment_stage(cfg, paths, seed, train) -> st.Stage:
    spec = cfg.data.sets[train]
    out = paths.aug(seed, train)
    args = [
        "launch.augment",
        f"--dataset={spec.loader}",
        f"--split={cfg.data.train_split}",
        f"--views_per_sample={cfg.augment.views}",
        f"--count={cfg.augment.count}",
        f"--seed={seed}",
        "--progress=false",
    ]
    name = f"augment/seed{seed}/{train}"
    full = [
        *args,
        f"--checkpoint={paths.run(seed, train, 'full')}",
        f"--data_dir={paths.data(train, spec.kind)}",
        f"--out_dir={out}",
    ]
    return st.Stage(
        name,
        "augment",
        lambda: run_launcher(full, paths.log(name)),
        outputs=(out,),
        scratch=(out + ".partial",),
        inputs={"args": args[1:], **_given(cfg, paths, train)},
        deps=(f"train/seed{seed}/{train}/full",),
        resumable=True,
        complete=lambda: _has(out, "manifest.json"),
    )


def _evaluate(**job) -> None:
    from hand_jax.estimate import scoring

    scoring.evaluate_split(**job)


def _evaluate_stage(cfg, paths, seed, model, column) -> st.Stage:
    train = cfg.data.model_for[column]
    spec = cfg.data.sets[column]
    steps = cfg.evaluate.refine_steps if model in REFINED_MODELS else 0
    out = paths.eval(seed, train, model, column)
    job = dict(
        checkpoint=paths.run(seed, train, model),
        dataset=spec.loader,
        data_dir=paths.data(column, spec.kind),
        split=cfg.data.test_split,
        out_dir=out,
        refine_steps=steps,
        batch_size=cfg.evaluate.batch_size,
    )
    deps = [f"train/seed{seed}/{train}/{model}"]
    if spec.kind == "synthetic":
        deps.append(f"data/{column}")
    return st.Stage(
        f"evaluate/seed{seed}/{model}/{column}",
        "evaluate",
        lambda: _evaluate(**job),
        outputs=(out,),
        inputs={
            "refine_steps": steps,
            "split": cfg.data.test_split,
            "dataset": spec.loader,
            **_given(cfg, paths, column),
        },
        deps=tuple(deps),
        complete=lambda: _has(out, "refinement.json"),
    )


def seed_stages(cfg, paths: Paths, seed: int) -> list[st.Stage]:
    """Training, augmentation and evaluation of one seed, in dependency order."""
    out = []
    for train in cfg.data.train:
        for model in ("skeleton", "full", "direct"):
            out.append(_train_stage(cfg, paths, seed, train, model))
        out.append(_augment_stage(cfg, paths, seed, train))
        out.append(_train_stage(cfg, paths, seed, train, "selfaug"))
    for column in cfg.data.columns:
        for model in MODELS:
            out.append(_evaluate_stage(cfg, paths, seed, model, column))
    return out


def figure_stages(cfg, paths: Paths) -> list[st.Stage]:
    """The refinement curve and the qualitative grid (first seed's models)."""
    from hand_jax.reproduce import figures

    seed = cfg.seeds[0]
    out = []
    for kind, fn, target in (
        ("curve", figures.refinement_curve, "refine_curve.json"),
        ("grid", figures.qualitative_grid, "qualitative.png"),
    ):
        deps = [f"train/seed{seed}/{t}/full" for t in cfg.data.train]
        deps += [f"data/{c}" for c in cfg.data.columns if cfg.data.sets[c].kind == "synthetic"]
        if kind == "grid":
            deps += [f"augment/seed{seed}/{t}" for t in cfg.data.train]
        path = os.path.join(paths.work, "figures", target)
        out.append(
            st.Stage(
                f"{kind}/seed{seed}",
                kind,
                lambda f=fn, p=path: f(cfg, paths, seed, p),
                outputs=(path,),
                inputs={
                    kind: cfg[kind].to_dict(),
                    "columns": list(cfg.data.columns),
                    "refine_steps": cfg.evaluate.refine_steps,
                    **_given(cfg, paths, *cfg.data.columns),
                },
                deps=tuple(deps),
            )
        )
    return out


def build(cfg, paths: Paths) -> list[st.Stage]:
    """Every stage of the study, in order."""
    out = data_stages(cfg, paths)
    for seed in cfg.seeds:
        out += seed_stages(cfg, paths, int(seed))
    return out + figure_stages(cfg, paths)
