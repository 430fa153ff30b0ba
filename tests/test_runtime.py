"""Thread-count controls and the configuration report."""

import io

import numba
import pytest

import numconv


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
