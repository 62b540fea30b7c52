"""Long struc2map work off ChimeraX's main thread, with its results handled on the main thread.

Why a worker thread (and not ChimeraX's ``Task`` or a subprocess):

- The work is PyTorch convolutions and numpy/C++ array code, which release the
  GIL: a Python thread leaves the GUI responsive at no start-up cost, and the
  weights, torch import and arrays stay in this process (a subprocess would
  import torch and load the weights again for every run, and ship the maps back
  through files).
- ``chimerax.core.tasks.Task`` changed its constructor and states between
  ChimeraX 1.8 and the develop branch, and its state setter fires session
  triggers from the worker thread, which ChimeraX's trigger sets do not
  support; a plain thread with the same discipline (only the main thread
  touches the session) works the same on every version the bundle supports.
- Stopping needs no process kill: the engine asks ``should_stop`` before each
  batch of tiles (a fraction of a second to a few seconds of work).

How: the worker runs ``work(emit, should_stop)``; what it emits is queued and
handed to ``on_event`` on the main thread from the session's ``'new frame'``
trigger (fired by ChimeraX's redraw loop about 60 times a second, as the
``boltz`` bundle polls its job), which also calls ``poll`` (e.g. to notice a
structure closed mid-run). When the work has ended and its events are handled,
``on_end(error)`` runs on the main thread. Without a GUI (nogui, scripts,
tests) there is no redraw loop: :meth:`Run.run_blocking` runs the same work in
the caller's thread, with the events handled as they are emitted.

One run at a time per session: :func:`current_run` gives the running one.
"""
from __future__ import annotations

import queue
import threading
import weakref
from typing import Any, Callable

_runs: "weakref.WeakKeyDictionary[Any, Run]" = weakref.WeakKeyDictionary()

Emit = Callable[[Any], None]


class Run:
    """One piece of work for a session: its stop flag, its events, and how it ends."""

    def __init__(self, session, work: Callable[[Emit, Callable[[], bool]], None],
                 on_event: Callable[[Any], None], on_end: Callable[[BaseException | None], None],
                 poll: Callable[[], None] | None = None) -> None:
        self.session = session
        self._work, self._on_event, self._on_end, self._poll = work, on_event, on_end, poll
        self._stop = threading.Event()
        self.stop_reason: str | None = None
        self._events: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None  # raised by the work (set on the worker)
        self._failure: BaseException | None = None  # raised by a main-thread handler
        self._handlers: list = []
        self.ended = False

    # --- control (main thread) ---------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Ask the work to stop at its next check; the first reason given is the one reported."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def in_background(self) -> bool:
        """Whether the work runs on a worker thread (errors are then logged, not raised to a caller)."""
        return self._thread is not None

    def start_in_background(self) -> None:
        """Start the worker thread and poll it on every new frame (GUI)."""
        _claim(self)
        triggers = self.session.triggers
        self._handlers = [triggers.add_handler("new frame", self._check)]
        if triggers.has_trigger("app quit"):
            self._handlers.append(triggers.add_handler("app quit", lambda *_: self.stop("ChimeraX is quitting")))
        self._thread = threading.Thread(target=self._run_work, name="struc2map", daemon=True)
        self._thread.start()

    def run_blocking(self) -> None:
        """Run the work in this thread, handling each event as it comes (no GUI); errors are raised."""
        _claim(self)
        try:
            def emit(event) -> None:
                self._on_event(event)
                if self._poll is not None:
                    self._poll()

            self._work(emit, self._stop.is_set)
        except BaseException as err:
            self._finish(err)
            raise
        self._finish(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread (not its main-thread handling); True if it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # --- internals ---------------------------------------------------------------------------

    def _run_work(self) -> None:
        try:
            self._work(self._events.put, self._stop.is_set)
        except BaseException as err:  # handed to the main thread, which reports it
            self._error = err

    def _check(self, *_) -> str | None:
        """'new frame' handler: hand queued events to the main thread; end when the worker has."""
        from chimerax.core.triggerset import DEREGISTER

        if self.ended:
            return DEREGISTER
        alive = self._thread is not None and self._thread.is_alive()  # read before draining: no event missed
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            self._handle(self._on_event, event)
        self._handle(self._poll)
        if alive:
            return None
        self._finish(self._failure or self._error)
        return DEREGISTER

    def _handle(self, func, *args) -> None:
        """Call a main-thread handler; a failure ends the run (reported by on_end), later events are dropped."""
        if func is None or self._failure is not None:
            return
        try:
            func(*args)
        except Exception as err:
            self._failure = err
            self.stop("of an error")

    def _finish(self, error: BaseException | None) -> None:
        self.ended = True
        for handler in self._handlers[1:]:  # the new-frame handler deregisters itself by returning DEREGISTER
            handler.remove()
        if _runs.get(self.session) is self:
            del _runs[self.session]
        self._on_end(error)


def current_run(session) -> Run | None:
    """The session's run in progress, if any."""
    return _runs.get(session)


def _claim(run: Run) -> None:
    if run.session in _runs:  # a caller's mistake: front ends refuse the user first, in their words (current_run)
        raise RuntimeError("a struc2map run is already in progress for this session")
    _runs[run.session] = run
