"""Thread-count controls and the configuration report."""

import io
import threading
import time

import numba
import pytest

import numconv
from numconv import runtime


def test_num_threads_context_restores_previous_value():
    before = numba.get_num_threads()
    with numconv.num_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_num_threads_context_restores_even_when_body_raises():
    before = numba.get_num_threads()
    with pytest.raises(KeyError):
        with numconv.num_threads(1):
            raise KeyError("boom")
    assert numba.get_num_threads() == before


def test_set_num_threads_sets_numba_count():
    before = numba.get_num_threads()
    try:
        numconv.set_num_threads(1)
        assert numconv.get_num_threads() == 1 == numba.get_num_threads()
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 10_000])
def test_thread_count_out_of_range_is_a_value_error(bad):
    with pytest.raises(ValueError, match=f"num_threads.*{bad}"):
        numconv.set_num_threads(bad)
    with pytest.raises(ValueError, match=f"num_threads.*{bad}"):
        with numconv.num_threads(bad):
            pass


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_thread_count_of_wrong_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="num_threads"):
        numconv.set_num_threads(bad)


def test_show_config_reports_versions_layer_threads_and_cache():
    buffer = io.StringIO()
    numconv.show_config(file=buffer)
    text = buffer.getvalue()
    for needle in ("numconv", numba.__version__, "threading layer", "threads", "cache enabled",
                   "cache folder"):
        assert needle in text


def test_run_lanes_returns_every_lane_in_order_on_up_to_two_threads():
    seen = {}

    def lane(index):
        seen[index] = threading.get_ident()
        return index * 10

    assert runtime.run_lanes(lane, 5) == [0, 10, 20, 30, 40]
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert len(set(seen.values())) == min(5, runtime.get_num_threads())


def test_run_lanes_stays_on_the_calling_thread_with_one_thread():
    with runtime.num_threads(1):
        idents = runtime.run_lanes(lambda index: threading.get_ident(), 3)
    assert idents == [threading.get_ident()] * 3


def test_run_lanes_raises_a_lanes_error_once_every_thread_ended():
    finished = []

    def lane(index):
        if index == 1:
            raise MemoryError("lane 1 ran out")
        time.sleep(0.05)  # the calling thread's lane ends after the error was raised
        finished.append(index)

    with pytest.raises(MemoryError, match="lane 1 ran out"):
        runtime.run_lanes(lane, 2)
    assert finished == [0]
