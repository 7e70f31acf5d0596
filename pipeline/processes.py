"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import signal
import sys


def die_with_parent() -> None:
    """In a child, before exec: restore Ctrl-C and get SIGTERM when the parent dies, however it dies.

    A child started from a non-interactive shell inherits SIGINT as ignored; Prefect and
    Scrapy both stop gracefully on it, so it is restored. The death signal is Linux's
    PR_SET_PDEATHSIG; elsewhere only the first part applies.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1  # from <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
