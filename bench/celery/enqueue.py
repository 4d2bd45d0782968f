"""Celery's producer for the worker benchmark: `python enqueue.py <bulk|one> <count> [chunk]`, configured
by the environment as tasks.py is. Prints one JSON line: {"seconds": ..., "cpuMicros": ...}.

  bulk  `group(noop.s(i) for i in chunk).apply_async()`, one chunk at a time: Celery's only way to
        send many calls in one go. It still publishes each call on its own (one LPUSH, a round trip,
        each), over one producer connection.
  one   `noop.apply_async((i,))` in a loop, each returning once its message is published.
"""

import json
import sys
import time

from celery import group
from tasks import noop

mode, count = sys.argv[1], int(sys.argv[2])
chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 1

if mode == 'one':
    # Connected first, as the bench's other producers are: the timing is of enqueues alone.
    noop.apply_async((-1,))

cpu0 = time.process_time()
t0 = time.perf_counter()
if mode == 'bulk':
    for start in range(0, count, chunk):
        group(noop.s(i) for i in range(start, min(count, start + chunk))).apply_async()
elif mode == 'one':
    for i in range(count):
        noop.apply_async((i,))
else:
    raise SystemExit(f'enqueue.py: mode must be bulk or one, not {mode!r}')
seconds = time.perf_counter() - t0
print(json.dumps({'seconds': seconds, 'cpuMicros': (time.process_time() - cpu0) * 1e6}), flush=True)
