"""The event loop the async SDK clients run on: one per process, in a daemon thread.

Chunk jobs (jobs/chunks.py) send their provider calls here; the adapters key their
async clients by this loop (base.async_key), so a forked work horse never reuses its
parent's connections.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Threads for providers without an async client (their complete() runs in one).
SYNC_CALL_THREADS = 64

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def call_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for provider calls, running in a daemon thread
    (started on first use, and again in a forked work horse)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            loop.set_default_executor(
                ThreadPoolExecutor(SYNC_CALL_THREADS, thread_name_prefix="ai-fields-call")
            )
            thread = threading.Thread(target=loop.run_forever, name="ai-fields-calls", daemon=True)
            thread.start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop
