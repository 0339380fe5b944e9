"""The resumable stage runner: skips, reruns, forces, resumes and cleans exactly what it should."""

import os

import pytest

from hand_jax.reproduce import stages as st


class Recorder:
    """Stages whose work is appending their name to a list and writing their output file."""

    def __init__(self, root):
        self.root, self.calls = root, []

    def stage(self, name, deps=(), inputs=None, fail=False, **kw):
        out = os.path.join(self.root, name.replace("/", "_"))

        def work():
            self.calls.append(name)
            with open(out, "a") as f:
                f.write("x")
            if fail:
                raise RuntimeError(f"{name} failed")

        return st.Stage(name, "k", work, outputs=(out,), inputs=inputs or {}, deps=deps, **kw)


def _runner(tmp_path, **kw):
    lines = []
    r = st.Runner(str(tmp_path / "state"), roots=[str(tmp_path)], log=lines.append, **kw)
    return r, lines


def _chain(rec, b_inputs=None):
    return [rec.stage("data/x"), rec.stage("train/x", deps=("data/x",), inputs=b_inputs),
            rec.stage("other/y")]  # fmt: skip


def test_second_run_skips_everything(tmp_path):
    rec = Recorder(str(tmp_path))
    _runner(tmp_path)[0].run(_chain(rec))
    assert rec.calls == ["data/x", "train/x", "other/y"]
    runner, lines = _runner(tmp_path)
    runner.run(_chain(rec))
    assert rec.calls == ["data/x", "train/x", "other/y"]  # nothing ran again
    assert all("skipped" in line for line in lines)


def test_changed_inputs_rerun_the_stage_and_what_depends_on_it(tmp_path):
    rec = Recorder(str(tmp_path))
    _runner(tmp_path)[0].run(_chain(rec))
    rec.calls.clear()
    stages = [rec.stage("data/x", inputs={"n": 2}), rec.stage("train/x", deps=("data/x",)),
              rec.stage("other/y")]  # fmt: skip
    _runner(tmp_path)[0].run(stages)
    assert rec.calls == ["data/x", "train/x"]
    # A fresh run starts from clean outputs: one "x", not two.
    assert open(os.path.join(tmp_path, "train_x")).read() == "x"


@pytest.mark.parametrize("force, expected", [
    (["data"], ["data/x", "train/x"]),
    (["train/x"], ["train/x"]),
    (["other/y"], ["other/y"]),
])  # fmt: skip
def test_force_reruns_the_named_stages_and_their_dependents(tmp_path, force, expected):
    rec = Recorder(str(tmp_path))
    _runner(tmp_path)[0].run(_chain(rec))
    rec.calls.clear()
    _runner(tmp_path, force=force)[0].run(_chain(rec))
    assert rec.calls == expected


def test_force_prefix_matches_whole_name_parts_only(tmp_path):
    runner, _ = _runner(tmp_path, force=["train"])
    assert runner.forced("train/seed0/full")
    assert not runner.forced("training/seed0")
    assert not runner.forced("trainx")


def test_interrupted_stage_restarts_clean_unless_resumable(tmp_path):
    rec = Recorder(str(tmp_path))
    with pytest.raises(RuntimeError):
        _runner(tmp_path)[0].run([rec.stage("a/plain", fail=True)])
    with pytest.raises(RuntimeError):
        _runner(tmp_path)[0].run([rec.stage("b/resumable", fail=True, resumable=True)])
    _runner(tmp_path)[0].run([rec.stage("a/plain"), rec.stage("b/resumable", resumable=True)])
    assert open(os.path.join(tmp_path, "a_plain")).read() == "x"  # half-written output removed
    assert open(os.path.join(tmp_path, "b_resumable")).read() == "xx"  # continued from it


def test_complete_outputs_are_marked_done_without_running(tmp_path):
    rec = Recorder(str(tmp_path))
    done = {"flag": False}
    stage = lambda fail: rec.stage("a/atomic", fail=fail, complete=lambda: done["flag"])  # noqa: E731
    with pytest.raises(RuntimeError):
        _runner(tmp_path)[0].run([stage(True)])
    done["flag"] = True  # its command finished its outputs, the marker was never written
    _runner(tmp_path)[0].run([stage(False)])
    assert rec.calls == ["a/atomic"]
    assert _runner(tmp_path)[0].marker("a/atomic")["status"] == "done"


def test_missing_output_reruns_a_done_stage(tmp_path):
    rec = Recorder(str(tmp_path))
    _runner(tmp_path)[0].run([rec.stage("a/x")])
    os.remove(os.path.join(tmp_path, "a_x"))
    _runner(tmp_path)[0].run([rec.stage("a/x")])
    assert rec.calls == ["a/x", "a/x"]


def test_outputs_outside_the_roots_are_refused_and_left_alone(tmp_path):
    outside = tmp_path / "keep.txt"
    outside.write_text("user data")
    runner = st.Runner(str(tmp_path / "state"), roots=[str(tmp_path / "work")], log=lambda s: 0)
    stage = st.Stage("a/x", "k", lambda: None, outputs=(str(outside),))
    with pytest.raises(ValueError, match="outside"):
        runner.run([stage])
    assert outside.read_text() == "user data"
    root = st.Stage("a/y", "k", lambda: None, outputs=(str(tmp_path / "work"),))
    with pytest.raises(ValueError, match="outside"):  # the root itself is not an output
        runner.run([root])


def test_dependency_must_run_first(tmp_path):
    rec = Recorder(str(tmp_path))
    with pytest.raises(ValueError, match="dependencies"):
        _runner(tmp_path)[0].run([rec.stage("b/x", deps=("a/x",)), rec.stage("a/x")])


def test_eta_scales_expected_costs_by_the_measured_speed(tmp_path):
    now = {"t": 0.0}

    def slow():  # takes twice its expected 10 s
        now["t"] += 20.0

    stages = [st.Stage(f"k/{i}", "k", slow) for i in range(3)]
    runner, lines = _runner(tmp_path, cost={"k": 10.0}, clock=lambda: now["t"])
    runner.run(stages)
    done = [line for line in lines if "done in" in line]
    assert "done in 0m20s" in done[0] and "ETA 0m40s" in done[0]  # 2 left x 10 s x 2.0
    assert "elapsed 0m40s" in done[1] and "ETA 0m20s" in done[1]
    assert "ETA 0m00s" in done[2]


def test_outputs_made_elsewhere_are_deleted_unless_adopted(tmp_path):
    rec = Recorder(str(tmp_path))
    for name in ("t_hand", "t_other", "p_plain"):
        (tmp_path / name).write_text("h")  # e.g. a training run launched by hand beforehand
    _runner(tmp_path, adopt=["t/hand", "p"])[0].run(
        [rec.stage("t/hand", resumable=True), rec.stage("t/other", resumable=True),
         rec.stage("p/plain")]
    )  # fmt: skip
    assert (tmp_path / "t_hand").read_text() == "hx"  # adopted and continued
    assert (tmp_path / "t_other").read_text() == "x"  # not adopted: started clean
    assert (tmp_path / "p_plain").read_text() == "x"  # not resumable: adopting means nothing


def test_a_forced_run_that_stops_is_finished_by_a_plain_rerun(tmp_path):
    rec = Recorder(str(tmp_path))
    chain = lambda fail=False: [rec.stage("train/0", fail=fail), rec.stage("train/1"),  # noqa: E731
                                rec.stage("eval/1", deps=("train/1",))]  # fmt: skip
    _runner(tmp_path)[0].run(chain())
    rec.calls.clear()
    with pytest.raises(RuntimeError):
        _runner(tmp_path, force=["train"])[0].run(chain(fail=True))
    _runner(tmp_path)[0].run(chain())  # no --force this time
    assert rec.calls == ["train/0", "train/0", "train/1", "eval/1"]


def test_scratch_is_cleaned_but_not_required(tmp_path):
    rec = Recorder(str(tmp_path))
    partial = tmp_path / "a_x.partial"
    partial.write_text("old")
    stage = lambda: rec.stage("a/x", scratch=(str(partial),))  # noqa: E731
    _runner(tmp_path)[0].run([stage()])
    assert not partial.exists()  # a fresh run starts without the stale partial output
    _runner(tmp_path)[0].run([stage()])
    assert rec.calls == ["a/x"]  # done although its scratch path does not exist


def test_status_reports_what_a_run_would_skip(tmp_path):
    rec = Recorder(str(tmp_path))
    _runner(tmp_path)[0].run(_chain(rec))
    runner, _ = _runner(tmp_path)
    assert set(runner.status(_chain(rec)).values()) == {"done"}
    changed = _chain(rec, b_inputs=None)
    changed[0] = rec.stage("data/x", inputs={"n": 2})
    status = runner.status(changed)
    assert status == {"data/x": "stale", "train/x": "stale", "other/y": "done"}
    assert rec.calls == ["data/x", "train/x", "other/y"]  # status ran nothing


def test_eta_leaves_out_stages_already_done(tmp_path):
    rec = Recorder(str(tmp_path))
    _runner(tmp_path)[0].run([rec.stage("a/x"), rec.stage("b/x")])
    os.remove(os.path.join(tmp_path, "a_x"))  # a/x must run again; b/x is still done
    runner, lines = _runner(tmp_path, cost={"k": 10.0})
    runner.run([rec.stage("a/x"), rec.stage("b/x")])
    assert "ETA 0m00s" in next(line for line in lines if "done in" in line)
