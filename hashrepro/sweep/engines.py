"""Where a sweep's tasks run: in this process, a local process pool, or a Dask cluster."""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait

from .errors import SweepError, _one_line


class _InlineEngine:
    """Runs each task in this process as it is submitted (``jobs=1``)."""

    remote = False

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)
        return fut

    @staticmethod
    def wait_first(futs):
        return futures_wait(futs, return_when=FIRST_COMPLETED).done

    def close(self):
        pass


class _PoolEngine(_InlineEngine):
    def __init__(self, jobs: int):
        import multiprocessing as mp

        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class _DaskEngine:
    remote = True

    def __init__(self, jobs: int, scheduler: str | None, connect_timeout: float):
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepError(
                    f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:g} s "
                    f"({_one_line(str(exc), 160)}); check the address (e.g. tcp://head:8786) and that "
                    f"the scheduler runs, or leave out --scheduler for a local cluster") from None
        else:
            self.cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    @staticmethod
    def wait_first(futs):
        from dask.distributed import wait

        return wait(futs, return_when="FIRST_COMPLETED").done

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
