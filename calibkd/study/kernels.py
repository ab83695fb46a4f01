"""Kernels started ahead of their notebook, so that a study's next chapter
does not wait for a kernel and its imports.

A chapter's kernel spends seconds starting and importing torch, pandas,
matplotlib and calibkd before its first result (at the smoke profile, a
large share of each chapter). ``run_study`` starts the next chapter's kernel,
in the notebooks' folder with the environment the chapters get, while the
current chapter computes, and runs the shared imports in it silently (no
output, no history, no execution count), so the chapter finds them done.
The notebook itself still runs every cell from its first: only work it would
have done anyway was moved earlier. Imports set no seed and start no thread
pool, so results are unchanged.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Sequence

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

#: The imports every chapter makes in its first code cells.
WARM_IMPORTS = (
    "import torch, pandas, matplotlib.pyplot, seaborn\n"
    "import calibkd.metrics, calibkd.plots, calibkd.study.context, calibkd.study.report\n"
)
#: Seconds to wait for a started kernel to answer: a kernel busy with its
#: warm-up answers when the imports are done, which on a loaded machine can
#: take longer than papermill's default minute.
START_TIMEOUT = 300


class _ClientKeepingManager(AsyncKernelManager):
    """A kernel manager that remembers the clients it hands out: papermill
    leaves its client's channels open when it does not own the kernel, and
    ``WarmKernel.shutdown`` closes them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clients_made: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        made = super().client(**kwargs)
        self.clients_made.append(made)
        return made


class WarmKernel:
    """A python3 kernel started now in ``cwd`` with ``extra_arguments``; a
    background thread sends it ``warm_code`` once it answers. ``manager`` is
    what papermill takes as ``km`` (it connects its own client and runs the
    notebook); the caller owns the kernel and stops it with ``shutdown``."""

    def __init__(self, cwd: Path, extra_arguments: Sequence[str], warm_code: str = WARM_IMPORTS) -> None:
        self.manager = _ClientKeepingManager(kernel_name="python3")
        run_sync(self.manager.start_kernel)(cwd=str(cwd), extra_arguments=list(extra_arguments))
        self._thread = threading.Thread(target=self._warm, args=(warm_code,), daemon=True)
        self._thread.start()

    def _warm(self, code: str) -> None:
        """Send ``code`` silently and return once the kernel has begun it (a
        warm-up that fails leaves a cold kernel, which papermill still uses)."""
        client = BlockingKernelClient()
        client.load_connection_info(self.manager.get_connection_info())
        client.start_channels()
        try:
            client.wait_for_ready(timeout=START_TIMEOUT)
            sent = client.execute(code, silent=True, store_history=False)
            while True:
                message = client.get_iopub_msg(timeout=START_TIMEOUT)
                if message["parent_header"].get("msg_id") == sent and message["msg_type"] == "status":
                    return
        except (RuntimeError, queue.Empty):
            return
        finally:
            client.stop_channels()

    def ready(self) -> AsyncKernelManager:
        """The kernel's manager, once the warm-up has been handed to the kernel."""
        self._thread.join()
        return self.manager

    def shutdown(self) -> None:
        """Stop the kernel and close its clients' channels (nothing to do if it already stopped)."""
        self._thread.join()
        while self.manager.clients_made:
            client = self.manager.clients_made.pop()
            if client.channels_running:
                client.stop_channels()
        if run_sync(self.manager.is_alive)():
            run_sync(self.manager.shutdown_kernel)(now=False)
