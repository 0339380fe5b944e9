"""Resumable stages: a long study as a list of steps that each finish or leave nothing behind.

A ``Stage`` names its outputs (folders or files) and everything its result depends on
(``inputs``: arguments, settings; ``deps``: the stages whose outputs it reads). The ``Runner``
keeps one small JSON marker per stage in its state folder:

- ``{"key": K, "status": "started"}`` before the stage runs;
- ``{"key": K, "status": "done", "token": T, "wall_s": s}`` once it finished.

``K`` hashes the stage's inputs and the ``token`` of each dependency (a fresh token each time a
stage completes), so a stage reruns when its own inputs changed or any upstream stage ran
again, and is skipped when it is done with the same key and its outputs exist. Before a stage
runs, its outputs are deleted (they are stale or half-written), except for a ``resumable``
stage interrupted with the same key, or never started by this runner, whose own command
continues from what it finds (training resumes from its checkpoint, e.g. one trained by hand on a
pod; augmentation from its finished shards). A stage whose command
writes its outputs atomically can say so with ``complete``: a stage killed after its outputs
were complete but before its marker was written is then marked done without running again.
``force`` names stages (exact names, or a prefix before ``/``: ``train`` forces every training)
to rerun; what depends on them reruns with them. Every output path must lie inside one of the
runner's ``roots``: nothing outside the study's folders is ever deleted.

Each stage prints one line when it starts and one when it ends, with the study's elapsed time
and an ETA from the stages' expected costs, scaled by how fast this machine has been so far.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence

from hand_jax import outputs


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a study.

    Attributes:
      name: unique, ``kind/detail`` (e.g. ``train/seed0/narrow/full``); used in ``--force``.
      kind: the cost class for the ETA (``data``, ``train``, ...).
      run: does the work; raises on failure.
      outputs: folders or files the stage produces (all must exist for it to count as done;
        deleted before a fresh run).
      scratch: work-in-progress paths of its command (deleted before a fresh run only).
      inputs: JSON-serialisable description of everything else the result depends on.
      deps: names of upstream stages (their completion tokens enter the key).
      resumable: an interrupted run with the same key continues instead of starting over.
      complete: optional check that the outputs are complete (atomic writers).
    """

    name: str
    kind: str
    run: Callable[[], None]
    outputs: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ()
    inputs: dict = dataclasses.field(default_factory=dict)
    deps: tuple[str, ...] = ()
    resumable: bool = False
    complete: Callable[[], bool] | None = None


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` is one of ``patterns`` or lies under one (``train`` -> ``train/...``)."""
    return any(name == f or name.startswith(f.rstrip("/") + "/") for f in patterns)


def _write_json(path: str, obj: dict) -> None:
    outputs.write_text_atomic(path, json.dumps(obj, indent=1))


def _fmt(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Runner:
    """Runs stages in order, skipping finished ones (see the module docstring).

    Args:
      state_dir: folder of the markers (created when the first is written).
      roots: folders the stages' outputs must lie in.
      cost: expected seconds per stage kind (for the ETA; unknown kinds count 60 s).
      force: stage names or name prefixes to rerun. Their markers are invalidated before
        anything runs, so a forced run that stops early is finished by a plain rerun.
      adopt: stage names or prefixes that, never started by this runner, take over what
        their command finds on disk (e.g. a training run by hand on a pod) instead of
        deleting it.
      provenance: recorded in every done marker (e.g. the commit that ran the stage).
      log: where progress lines go.
      clock: seconds (monotonic), injectable for tests.
    """

    def __init__(
        self,
        state_dir: str,
        *,
        roots: Sequence[str],
        cost: dict | None = None,
        force: Sequence[str] = (),
        adopt: Sequence[str] = (),
        provenance: dict | None = None,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.state_dir = state_dir
        self.roots = [os.path.realpath(r) for r in roots]
        self.cost = dict(cost or {})
        self.force = tuple(force)
        self.adopt = tuple(adopt)
        self.provenance = dict(provenance or {})
        self.log = log
        self.clock = clock
        self.tokens: dict[str, str] = {}
        self.ran: list[str] = []

    def _marker_path(self, name: str) -> str:
        return os.path.join(self.state_dir, name.replace("/", "__") + ".json")

    def marker(self, name: str) -> dict | None:
        """The stage's marker, or None (a missing or unreadable marker counts as none)."""
        try:
            with open(self._marker_path(name)) as f:
                marker = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return marker if isinstance(marker, dict) else None  # valid JSON, not a marker: none

    def key(self, stage: Stage, tokens: dict | None = None) -> str:
        """Hash of the stage's inputs and its dependencies' completion tokens."""
        tokens = self.tokens if tokens is None else tokens
        missing = [d for d in stage.deps if d not in tokens]
        if missing:
            raise ValueError(f"stage {stage.name}: dependencies {missing} have not run before it")
        body = {"inputs": stage.inputs, "deps": {d: tokens[d] for d in stage.deps}}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def forced(self, name: str) -> bool:
        return matches(name, self.force)

    def adopted(self, name: str) -> bool:
        return matches(name, self.adopt)

    def _clean(self, stage: Stage) -> None:
        for path in (*stage.outputs, *stage.scratch):
            real = os.path.realpath(path)
            if not any(os.path.commonpath([r, real]) == r and real != r for r in self.roots):
                raise ValueError(f"stage {stage.name}: output {path} is outside {self.roots}")
            if os.path.isdir(real) and not os.path.islink(path):
                shutil.rmtree(real)
            elif os.path.lexists(path):
                os.remove(path)

    def _state(self, stage: Stage, key: str) -> str:
        """``skip`` | ``resume`` | ``fresh`` for a stage with ``key``."""
        m = self.marker(stage.name)
        same = m is not None and m.get("key") == key and not self.forced(stage.name)
        exist = all(os.path.exists(p) for p in stage.outputs)
        if same and m.get("status") == "done" and exist:
            return "skip"
        if same and m.get("status") == "started":
            if stage.complete is not None and stage.complete():
                return "complete"
            if stage.resumable:
                return "resume"
        if m is None and self.adopted(stage.name) and not self.forced(stage.name):
            # Never started here, and named in ``adopt``: take over what its command finds.
            if stage.complete is not None and stage.complete():
                return "complete"
            return "resume" if stage.resumable else "fresh"
        return "fresh"

    def _eta(self, remaining: Sequence[Stage], spent: float, expected_spent: float) -> float:
        """Expected seconds of the remaining stages not yet done, at the measured speed."""
        speed = spent / expected_spent if expected_spent > 0 else 1.0
        todo = [s for s in remaining if (self.marker(s.name) or {}).get("status") != "done"]
        return speed * sum(self.cost.get(s.kind, 60.0) for s in todo)

    def status(self, stages: Sequence[Stage]) -> dict[str, str]:
        """``done`` or ``stale`` per stage, as a run would find it, running nothing.

        A stage is done when its marker is done with the key its inputs and its (done)
        dependencies give and its outputs exist; anything downstream of a stale stage is stale.
        """
        tokens, out = {}, {}
        for stage in stages:
            m = self.marker(stage.name) or {}
            ok = all(out.get(d) == "done" for d in stage.deps)
            ok = ok and m.get("status") == "done" and m.get("key") == self.key(stage, tokens)
            ok = ok and all(os.path.exists(p) for p in stage.outputs)
            out[stage.name] = "done" if ok else "stale"
            if ok:
                tokens[stage.name] = m["token"]
        return out

    def _invalidate_forced(self, stages: Sequence[Stage]) -> None:
        for stage in stages:
            if self.forced(stage.name) and self.marker(stage.name) is not None:
                _write_json(self._marker_path(stage.name), {"key": None, "status": "forced"})

    def run(self, stages: Sequence[Stage]) -> dict[str, str]:
        """Run ``stages`` in order; return each stage's completion token."""
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in {names}")
        self._invalidate_forced(stages)
        start, spent, expected_spent = self.clock(), 0.0, 0.0
        for i, stage in enumerate(stages):
            key = self.key(stage)
            state = self._state(stage, key)
            tag = f"[{i + 1}/{len(stages)}] {stage.name}"
            if state in ("skip", "complete"):
                if state == "complete":
                    self._finish(stage, key, 0.0)
                self.tokens[stage.name] = self.marker(stage.name)["token"]
                done = "up to date, skipped" if state == "skip" else "outputs complete, marked done"
                self.log(f"{tag}: {done}")
                continue
            expected = self.cost.get(stage.kind, 60.0)
            if state == "fresh":
                self._clean(stage)
            _write_json(self._marker_path(stage.name), {"key": key, "status": "started"})
            verb = {"resume": "resuming", "fresh": "running"}[state]
            if state == "resume" and self.marker(stage.name) is None:
                verb = "adopting what is on disk"
            self.log(f"{tag}: {verb} (expected ~{_fmt(expected)})")
            t0 = self.clock()
            stage.run()
            wall = self.clock() - t0
            spent, expected_spent = spent + wall, expected_spent + expected
            self._finish(stage, key, wall)
            self.ran.append(stage.name)
            eta = self._eta(stages[i + 1 :], spent, expected_spent)
            self.log(
                f"{tag}: done in {_fmt(wall)} | elapsed {_fmt(self.clock() - start)} | "
                f"ETA {_fmt(eta)}"
            )
        return dict(self.tokens)

    def _finish(self, stage: Stage, key: str, wall: float) -> None:
        token = f"{key}-{uuid.uuid4().hex[:8]}"
        _write_json(
            self._marker_path(stage.name),
            {
                "key": key,
                "status": "done",
                "token": token,
                "wall_s": round(wall, 1),
                **self.provenance,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        self.tokens[stage.name] = token
