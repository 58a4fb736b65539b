"""Console output that does not depend on the wall clock: progress lines in logs are paced by an injected clock."""

from __future__ import annotations

from moeplace.console import Console, ProgressLog


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


INFO = {"objective": 2_550_764.4, "evaluations": 1185}
BOUNDED = {"objective": 2_204_132.8, "evaluations": 48_530, "bound": 1_629_000.0, "gap": 0.2609}


def test_a_line_every_interval_with_objective_bound_gap_and_work():
    clock, lines = StepClock(), []
    log = ProgressLog(lines.append, interval_s=5.0, clock=clock)
    clock.now += 3
    log.tick()
    assert lines == []
    clock.now += 2
    log.tick()
    assert lines == ["solving: 5 s  no plan yet"]
    clock.now += 1
    log.update(INFO)                       # 1 s after the last line: recorded, not written
    assert len(lines) == 1
    clock.now += 4
    log.update(BOUNDED)
    assert lines[-1] == ("solving: 10 s  objective 2,204,133  bound 1,629,000  gap 26.1%  evaluations 48,530")
    clock.now += 5
    log.tick()                             # the search is quiet: the heartbeat repeats the incumbent
    assert lines[-1] == "solving: 15 s  objective 2,204,133  bound 1,629,000  gap 26.1%  evaluations 48,530"
    assert len(lines) == 3


def test_solve_progress_writes_plain_lines_when_stdout_is_not_a_terminal(capsys):
    clock = StepClock()
    with Console().solve_progress(clock=clock, heartbeat=False) as progress:
        progress(INFO)
        clock.now += 6
        progress(INFO)
    assert capsys.readouterr().out == "solving: 6 s  objective 2,550,764  evaluations 1,185\n"


def test_quiet_and_heartbeat_thread_stop_cleanly(capsys):
    with Console(quiet=True).solve_progress() as progress:
        progress(INFO)
    with Console().solve_progress(interval_s=1e9) as progress:   # thread started and joined, no line
        progress(INFO)
    assert capsys.readouterr().out == ""


def test_after_the_search_the_line_says_the_bound_is_being_proved():
    """The bound's LPs run after the search; the heartbeat must not repeat the search's stale bound."""
    clock, lines = StepClock(), []
    log = ProgressLog(lines.append, interval_s=5.0, clock=clock)
    log.update(BOUNDED)
    clock.now += 5
    log.update({"objective": 2_182_702.1, "phase": "search done; proving the lower bound (node LP, domain profiles)"})
    assert lines[-1] == ("solving: 5 s  objective 2,182,702  "
                         "search done; proving the lower bound (node LP, domain profiles)")
    assert "gap" not in lines[-1]
