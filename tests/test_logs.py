"""The library logs through `logging` (xlt/logs.py): a job's log file (stages.log_to)
gets its log records as `[HH:MM:SS] message` lines, in order with what is written to
stdout and stderr, and the terminal gets them again once the job is done."""

from __future__ import annotations

import logging
import os
import re
import sys

from xlt.logs import logging_to
from xlt.stages import log_to

STAMP = r"\[\d\d:\d\d:\d\d\] "


def test_a_jobs_log_file_holds_its_log_records_and_output_in_order(tmp_path, capfd):
    logger = logging.getLogger("xlt.stages")
    path = tmp_path / "logs" / "job.log"
    capfd.readouterr()
    with logging_to(logging.StreamHandler(sys.stderr)):
        with log_to(path):
            logger.info("first")
            os.write(1, b"native stdout\n")
            os.write(2, b"native stderr\n")
            logger.warning("eng_Latn: warning: second")
        logger.info("after the job")
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[1:3] == ["native stdout", "native stderr"]
    assert re.fullmatch(STAMP + "first", lines[0]) and re.fullmatch(STAMP + "eng_Latn: warning: second", lines[3])
    assert re.fullmatch(STAMP + "after the job\n", capfd.readouterr().err)
    assert logging.getLogger("xlt").handlers == []
