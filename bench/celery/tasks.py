"""The Celery side of the worker benchmark (bench/worker.ts): one no-op task, configured from the
environment, for the worker (`celery -A tasks worker`) and the producer (enqueue.py) alike.

  BENCH_BROKER, BENCH_BACKEND   redis:// URLs (the bench's private redis-server, databases of their own)
  BENCH_QUEUE                   the queue every call goes to
  BENCH_ACKS_LATE               1: acknowledge after the call (Taskfleet's semantics); 0: on receipt
  BENCH_IGNORE_RESULT           1: store no result; 0: store each (SET + PUBLISH on the result backend)
  BENCH_TASKS                   worker only: how many completions to wait for before reporting

The worker reports on file descriptor 3, one JSON line each, as bench/worker-child.ts does on its
stdout: {"type": "ready"} once it consumes, then {"type": "done", ...} after the last completion. It
stops when its stdin closes (the bench's way to stop it, and what happens if the bench dies): the
whole process group, pool processes included, is killed at once; the bench starts it in a group of
its own, and what it leaves in Redis is flushed.
"""

import json
import os
import signal
import threading
import time

from celery import Celery, signals

QUEUE = os.environ['BENCH_QUEUE']
TASKS = int(os.environ.get('BENCH_TASKS', '0'))

app = Celery('bench', broker=os.environ['BENCH_BROKER'], backend=os.environ['BENCH_BACKEND'])
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=os.environ['BENCH_ACKS_LATE'] == '1',
    task_ignore_result=os.environ['BENCH_IGNORE_RESULT'] == '1',
    # Logs only: the report goes to fd 3.
    worker_redirect_stdouts=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name='noop')
def noop(arg):
    return None


def _cpu_seconds(pid):
    """User + system CPU of one process, from /proc (0 once it has gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _rss_bytes(pid):
    try:
        with open(f'/proc/{pid}/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        return 0


def _tree(pid=None):
    """This process and its descendants (prefork's pool processes)."""
    pid = pid or os.getpid()
    pids = [pid]
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{task}/children') as f:
                for child in f.read().split():
                    pids.extend(_tree(int(child)))
        except OSError:
            pass
    return pids


class _Completions:
    """Counts the calls the worker finishes, in its main process, as the worker child counts ours."""

    def __init__(self, report):
        self.report = report
        self.lock = threading.Lock()
        self.first = self.last = 0.0
        self.count = self.failures = 0
        self.cpu_at_first = 0.0
        self.rss_peak = 0
        self.done = False

    def sample_rss(self):
        self.rss_peak = max(self.rss_peak, sum(_rss_bytes(pid) for pid in _tree()))

    def tick(self, ok):
        with self.lock:
            now = time.time() * 1000
            if self.count == 0:
                self.first = now
                self.cpu_at_first = sum(_cpu_seconds(pid) for pid in _tree())
            self.last = now
            self.count += 1
            if not ok:
                self.failures += 1
            if self.count != TASKS:
                return
        cpu = sum(_cpu_seconds(pid) for pid in _tree()) - self.cpu_at_first
        self.done = True
        self.sample_rss()
        self.report(
            type='done', first=self.first, last=self.last, count=self.count, failures=self.failures,
            cpuMicros=cpu * 1e6, rssPeak=self.rss_peak, latencies=[],
        )


def _install_worker_hooks():
    """
    Completion is the worker's own callback after the call: the result stored (in the pool process)
    and, with acks_late, the message acknowledged. The worker builds a Request class per task
    (strategy.create_request_cls); the hook subclasses it, so the worker runs unchanged otherwise.
    """
    from celery.worker import strategy

    out = os.fdopen(3, 'w', buffering=1)

    def report(**message):
        out.write(json.dumps(message) + '\n')

    completions = _Completions(report)
    make_request_cls = strategy.create_request_cls

    def timed_request_cls(*args, **kwargs):
        base = make_request_cls(*args, **kwargs)

        class Timed(base):
            def on_success(self, failed__retval__runtime, **kw):
                super().on_success(failed__retval__runtime, **kw)
                # A failed call goes through on_failure, which counts it.
                if not failed__retval__runtime[0]:
                    completions.tick(True)

            def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
                super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
                completions.tick(False)

        return Timed

    strategy.create_request_cls = timed_request_cls

    def sample():
        while not completions.done:
            completions.sample_rss()
            time.sleep(0.05)

    def stop_when_stdin_closes():
        # os.read, not sys.stdin: a pool process forked while this thread holds sys.stdin's lock would
        # hang closing it.
        while os.read(0, 4096):
            pass
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os._exit(3)

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()

    @signals.worker_ready.connect(weak=False)
    def ready(**_):
        completions.sample_rss()
        report(type='ready', rssIdle=completions.rss_peak)
        threading.Thread(target=sample, daemon=True).start()


if os.environ.get('BENCH_ROLE') == 'worker':
    _install_worker_hooks()
