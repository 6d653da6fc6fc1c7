"""Progress bars of the long management commands (tqdm): one line, with rate and time left."""

from __future__ import annotations

from typing import IO

from tqdm import tqdm

# "[#####.....]  42% 4,200/10,000 values  1,234 values/s  elapsed 00:03, left 00:05"
BAR_FORMAT = ("{desc}{percentage:3.0f}%|{bar:30}| {n:,}/{total:,} {unit}  {rate_fmt}  "
              "elapsed {elapsed}, left {remaining}")
# Into a file or pipe: a whole line this often at most, and one at the end.
LOG_INTERVAL_SECONDS = 5.0


class LogLines(tqdm):
    """tqdm for a file or pipe: each refresh is a whole line ending in a newline, never a
    carriage return redrawing the last one, and closing writes a final line with the overall
    rate when the count moved since the last line, so a log holds readable lines."""

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing its line: nothing to clear in a log
            return False
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        self.line_n = self.n
        return True

    def close(self):
        # The summary, unless the last line already says the same count (nothing sent since).
        if not self.disable and getattr(self, "line_n", None) != self.n:
            self._ema_dt = lambda: None  # the summary's rate over the whole run
            self.display()
        self.leave = False  # whole lines only: tqdm has nothing more to print
        super().close()


def progress_bar(*, total: int, unit: str, stream: IO[str], initial: int = 0,
                 desc: str = "") -> tqdm:
    """A bar redrawn in place on a terminal; into a file or pipe, a plain line every
    `LOG_INTERVAL_SECONDS` and a summary line at the end (a log stays readable)."""
    tty = stream.isatty() if hasattr(stream, "isatty") else False
    options = {"total": total, "initial": initial, "unit": f" {unit}", "file": stream,
               "desc": desc, "bar_format": BAR_FORMAT.replace("{unit}", unit)}
    if tty:
        return tqdm(**options, dynamic_ncols=True, mininterval=0.1, leave=True)
    return LogLines(**options, ascii=True, ncols=100, mininterval=LOG_INTERVAL_SECONDS,
                    maxinterval=LOG_INTERVAL_SECONDS * 4, leave=True)
