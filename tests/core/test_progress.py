"""The long commands' progress bars: redrawn in place on a terminal, plain lines in a log."""

import io

from apps.core import progress
from apps.core.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_into_a_file_every_refresh_is_a_whole_line_and_the_last_one_sums_up(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_SECONDS", 0)  # a line on every update
    log = io.StringIO()

    bar = progress_bar(total=3, unit="values", stream=log)
    for _ in range(3):
        bar.update(1)
    bar.close()
    bar.close()  # closing twice (and the garbage collector's close) writes nothing more

    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    # The last update's line already says 3/3: no second summary line repeating it.
    assert [line.split("|")[0].strip() for line in lines] == ["0%", "33%", "67%", "100%"]
    assert "3/3 values" in lines[-1] and "values/s" in lines[-1] and "left 00:00" in lines[-1]


def test_into_a_file_a_bar_that_did_not_move_writes_one_line():
    log = io.StringIO()

    bar = progress_bar(total=7432, unit="values", stream=log, initial=7432)  # resumed, done
    bar.close()

    assert log.getvalue().count("\n") == 1 and "7,432/7,432 values" in log.getvalue()


def test_into_a_file_updates_between_intervals_write_no_line():
    log = io.StringIO()

    bar = progress_bar(total=1000, unit="packets", stream=log)
    for _ in range(1000):
        bar.update(1)
    bar.close()

    lines = log.getvalue().splitlines()
    assert len(lines) == 2  # the start and the summary; 5 s did not pass in between
    assert "1,000/1,000 packets" in lines[-1]


def test_on_a_terminal_the_bar_is_redrawn_in_place():
    screen = Terminal()

    bar = progress_bar(total=2, unit="values", stream=screen)
    bar.update(2)
    bar.close()

    text = screen.getvalue()
    assert text.count("\r") >= 2 and text.count("\n") == 1
    assert "2/2 values" in text
