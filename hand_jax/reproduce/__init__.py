"""Reproduce the paper's tables: the ablation, the comparison and their pictures, resumably.

``run`` builds the study's stages (``plan``) from a config (``launch/configs/reproduce.py``),
runs them with the resumable ``stages.Runner`` and writes the tables and pictures (``report``).
"""

import os

from hand_jax.reproduce import plan, report, stages

STUDY_MARKER = ".hand_jax_study"  # in a work folder: this study made it


def check_work_dir(work_dir: str, *, create: bool = True) -> None:
    """Refuse a work folder that holds anything but a study of this project; mark a new one.

    The study deletes the outputs of stages it reruns, so it only works in an empty (or new)
    folder, which it marks (``create``), or in one that carries its marker (or, from before the
    marker, its ``stages`` folder of stage markers).
    """
    work_dir = os.path.abspath(work_dir)
    if os.path.isfile(os.path.join(work_dir, STUDY_MARKER)):
        return
    if os.path.isdir(os.path.join(work_dir, "stages")) and os.listdir(
        os.path.join(work_dir, "stages")
    ):
        create = create and os.access(work_dir, os.W_OK)
    elif os.path.exists(work_dir) and (not os.path.isdir(work_dir) or os.listdir(work_dir)):
        raise ValueError(
            f"--work_dir={work_dir}: not empty and not a study's work folder (no {STUDY_MARKER}); "
            "give an empty or new folder, or the work folder of an earlier run of this study"
        )
    if create:
        os.makedirs(work_dir, exist_ok=True)
        with open(os.path.join(work_dir, STUDY_MARKER), "w") as f:
            f.write("hand_jax reproduction work folder\n")


def run(
    cfg,
    *,
    work_dir: str,
    out_dir: str,
    data_dirs: dict | None = None,
    force=(),
    adopt=(),
    command: str = "",
    report_only: bool = False,
    dry_run: bool = False,
    log=print,
) -> dict:
    """Run (or resume) the study of ``cfg`` and write its report into ``out_dir``.

    Args:
      cfg: a ``launch/configs/reproduce.py`` config.
      work_dir: folder of data, runs, evaluations, logs and stage markers.
      out_dir: folder of the tables and pictures (``results/<name>``).
      data_dirs: dataset name -> root, for the preset's given (non-synthetic) datasets.
      force: stage names or prefixes to rerun (``data``, ``train``, ``train/seed1``, ...).
      adopt: stage names or prefixes whose outputs, made outside this study (e.g. a training
        run by hand on a pod), are taken over instead of deleted when the stage never ran here.
      command: the command line, recorded in the report.
      report_only: write the report from the evaluations that are up to date; run nothing.
      dry_run: print the stages and whether each is up to date; run nothing.
      log: where progress lines go.

    Returns:
      ``results.json``'s content (or, with ``dry_run``, ``{"stages": {name: "done" | "stale"}}``).
    """
    check_work_dir(work_dir, create=not dry_run)
    paths = plan.Paths(work_dir, out_dir, data_dirs or {})
    todo = plan.build(cfg, paths)
    for flag, names in (("--force", force), ("--adopt", adopt)):
        unknown = [f for f in names if not any(stages.matches(s.name, [f]) for s in todo)]
        if unknown:
            raise ValueError(
                f"{flag}: no stage named {unknown}; stages: "
                f"{sorted({s.name.split('/')[0] for s in todo})} (or full names)"
            )
    runner = stages.Runner(
        os.path.join(paths.work, "stages"), roots=[paths.work], cost=cfg.cost.to_dict(),
        force=force, adopt=adopt, provenance=report.code_version(), log=log,
    )  # fmt: skip
    if dry_run:
        status = runner.status(todo)
        for s in todo:
            log(f"{s.name} ({s.kind}): {'up to date' if status[s.name] == 'done' else 'to run'}")
        return {"stages": status}
    if not report_only:
        log(f"{cfg.preset} preset: {cfg.label}; {len(todo)} stages; work in {paths.work}")
        report.record_invocation(cfg, paths, command=command)
        runner.run(todo)
    body = report.write_report(cfg, paths, command=command, status=runner.status(todo))
    log(f"report written to {paths.out}")
    return body
