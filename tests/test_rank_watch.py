"""fastnn._rank_watch, in-process: the timeout setting, the start-of-fit handshake
and the watchdog, driven through a fake strategy whose ``Abort`` only records
the call. The real thing, under mpiexec, is tested in test_distributed.py."""
import math
import sys
import threading
import time

import pytest

from fastnn import _rank_watch, distributed


class FakeMPI:
    THREAD_MULTIPLE = 3

    @staticmethod
    def Query_thread():
        return FakeMPI.THREAD_MULTIPLE


class FakeRequest:
    def __init__(self, done):
        self.done = done

    def Test(self):
        return self.done


class FakeComm:
    """Messages from or to a rank in ``absent`` never complete; Abort records."""

    def __init__(self, absent=()):
        self.absent = set(absent)
        self.aborted = threading.Event()
        self.codes = []

    def Irecv(self, buf, source, tag):
        return FakeRequest(source not in self.absent)

    def Isend(self, buf, dest, tag):
        return FakeRequest(dest not in self.absent)

    def Abort(self, code):
        self.codes.append(code)
        self.aborted.set()


class FakeStrategy:
    def __init__(self, rank=0, size=2, timeout=0.2, absent=()):
        self.rank, self.size, self.timeout = rank, size, timeout
        self._mpi = FakeMPI
        self.comm = FakeComm()
        self._control = FakeComm(absent)
        self._waiting = None
        self._epoch = 0


# ---- the timeout setting -----------------------------------------------------------

def test_timeout_defaults_to_60_s(monkeypatch):
    monkeypatch.delenv("FASTNN_MPI_TIMEOUT", raising=False)
    assert _rank_watch.resolve_timeout(None) == 60.0


def test_timeout_comes_from_the_environment_unless_given(monkeypatch):
    monkeypatch.setenv("FASTNN_MPI_TIMEOUT", "2.5")
    assert _rank_watch.resolve_timeout(None) == 2.5
    assert _rank_watch.resolve_timeout(7) == 7.0          # the argument wins
    monkeypatch.setenv("FASTNN_MPI_TIMEOUT", "inf")
    assert _rank_watch.resolve_timeout(None) == math.inf


@pytest.mark.parametrize("bad", [0, -1, float("nan"), -math.inf])
def test_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"MPI\(timeout=\.\.\.\) must be a number of "
                                         r"seconds > 0"):
        _rank_watch.resolve_timeout(bad)


@pytest.mark.parametrize("bad", ["5", True, [5]])
def test_timeout_must_be_a_number(bad):
    with pytest.raises(TypeError, match=r"MPI\(timeout=\.\.\.\) must be a number"):
        _rank_watch.resolve_timeout(bad)


@pytest.mark.parametrize("text", ["soon", "0", "-3"])
def test_a_bad_environment_value_is_named(monkeypatch, text):
    monkeypatch.setenv("FASTNN_MPI_TIMEOUT", text)
    with pytest.raises(ValueError, match="FASTNN_MPI_TIMEOUT must be a number of seconds"):
        _rank_watch.resolve_timeout(None)


def test_mpi_checks_its_timeout_before_starting_mpi(monkeypatch):
    # a ValueError, not the ImportError that importing mpi4py would give
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ValueError, match="timeout"):
        distributed.MPI(timeout=0)


# ---- the start-of-fit handshake ----------------------------------------------------

def test_handshake_returns_when_every_rank_arrived(capsys):
    strategy = FakeStrategy(rank=1, size=4)
    _rank_watch.arrive(strategy, "the start of fit")
    assert strategy.comm.codes == []
    assert capsys.readouterr().err == ""


def test_handshake_names_the_ranks_that_did_not_arrive_then_aborts(capsys):
    strategy = FakeStrategy(rank=0, size=5, timeout=0.05, absent={2, 4})
    _rank_watch.arrive(strategy, "the start of fit")
    assert strategy.comm.codes == [1]
    err = capsys.readouterr().err
    assert "rank 0 of 5 waited for ranks 2, 4 at the start of fit" in err
    assert "within 0.05 s" in err and "FASTNN_MPI_TIMEOUT" in err


def test_handshake_names_at_most_twenty_ranks(capsys):
    strategy = FakeStrategy(rank=0, size=30, timeout=0.01, absent=range(1, 30))
    _rank_watch.arrive(strategy, "the start of fit")
    err = capsys.readouterr().err
    assert "ranks 1, 2, 3," in err and ", 20 and 9 more at" in err


# ---- the watchdog ------------------------------------------------------------------

def test_watchdog_aborts_a_collective_that_waits_too_long(capsys):
    strategy = FakeStrategy(timeout=0.2)
    strategy._epoch = 3
    with _rank_watch.Watchdog(strategy):
        strategy._waiting = ("gradient Allreduce", time.perf_counter())
        assert strategy.comm.aborted.wait(10)
    assert strategy.comm.codes == [1]
    err = capsys.readouterr().err
    assert "rank 0 of 2 waited" in err
    assert "in fit's gradient Allreduce (epoch 3) for the other ranks" in err
    assert "timeout of 0.2 s" in err


def test_watchdog_lets_short_waits_and_idle_time_pass():
    strategy = FakeStrategy(timeout=0.4)
    with _rank_watch.Watchdog(strategy) as watchdog:
        time.sleep(0.6)                         # no collective in flight: idle
        for _ in range(6):                      # collectives that each end in time
            strategy._waiting = ("gradient Allreduce", time.perf_counter())
            time.sleep(0.1)
            strategy._waiting = None
    assert not watchdog._thread.is_alive()      # the thread ends with the fit
    assert strategy.comm.codes == []


def test_an_infinite_timeout_starts_no_watchdog():
    strategy = FakeStrategy(timeout=math.inf)
    with _rank_watch.Watchdog(strategy) as watchdog:
        assert watchdog._thread is None
