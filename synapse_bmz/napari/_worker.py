"""Long work off the GUI thread: a progress bar, a status line and a Cancel that really stops.

A widget's work is a generator function (usually ``yield from`` the API's
``predict_events`` / ``segment_events``) yielding `ProgressEvent` s or status
strings and returning its result. `TaskPanel.start` runs it in Qt's thread
pool; the result is handed to a callback in the GUI thread (only there may
layers be added). Cancel asks the worker to stop at the next yield and then
*closes* the generator, so ``GeneratorExit`` runs through the API's
generators (their ``finally`` blocks, the executor's cleanup) at once, in the
worker thread, instead of whenever the garbage collector gets to it.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Optional

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from superqt.utils import GeneratorWorker

from ..api import ProgressEvent
from ._errors import notify_error

__all__ = ["ClosingWorker", "TaskPanel"]


class ClosingWorker(GeneratorWorker):
    """superqt's generator worker that closes its generator however it stops.

    superqt's own worker only stops iterating on ``quit()``; the suspended
    generator (and the model session, open stores and executor it holds)
    would live on until garbage collection. Deliberately not napari's
    worker: that one reports errors as tracebacks, ours are one line.
    """

    def work(self):
        try:
            return super().work()
        finally:
            self._gen.close()


class TaskPanel(Container):
    """Run / Cancel buttons, a progress bar and a status line for one widget's work.

    Parameters
    ----------
    run_text : str
        Label of the run button; the owning widget connects
        ``run_button.changed`` to its own handler, which calls `start`.
    """

    def __init__(self, run_text: str = "Run"):
        self.run_button = PushButton(text=run_text, name="run")
        self.cancel_button = PushButton(text="Cancel", name="cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=100, value=0, name="progress", label="")
        self.status = Label(value="", name="status")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.worker: Optional[ClosingWorker] = None
        #: ``"done"``, ``"cancelled"``, ``"error"`` or None (never run / running)
        self.outcome: Optional[str] = None
        #: events seen by the last run (ProgressEvent or str), for the status line and tests
        self.events: list = []
        self.cancel_button.changed.connect(self.cancel)

    @property
    def busy(self) -> bool:
        """True while a run is in progress."""
        return self.worker is not None

    def start(self, work: Callable[..., Generator], *args: Any, on_result: Callable[[Any], None],
              **kwargs: Any) -> ClosingWorker:
        """Run ``work(*args, **kwargs)`` in a worker thread; ``on_result(result)`` in the GUI thread.

        Errors (in the work or in ``on_result``) become one-line notifications.
        """
        if self.busy:
            raise RuntimeError("a run is already in progress")
        worker = ClosingWorker(work, *args, **kwargs)
        self.worker, self.outcome, self.events = worker, None, []
        self.progress.value = 0
        self.status.value = "starting"
        self.run_button.enabled, self.cancel_button.enabled = False, True

        def returned(result):
            try:
                on_result(result)
            except Exception as error:  # noqa: BLE001 - shown to the user, one line
                errored(error)
                return
            self.progress.value = 100
            self.outcome, self.status.value = "done", "done"

        def errored(error):
            self.outcome = "error"
            self.status.value = notify_error(error)

        def aborted():
            self.outcome, self.status.value = "cancelled", "cancelled"

        def finished():
            self.worker = None
            self.run_button.enabled, self.cancel_button.enabled = True, False

        worker.yielded.connect(self._on_event)
        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.aborted.connect(aborted)
        worker.finished.connect(finished)
        worker.start()
        return worker

    def cancel(self, *_: Any) -> None:
        """Stop the running work at its next progress event (the generator is then closed)."""
        if self.worker is not None:
            self.status.value = "cancelling"
            self.cancel_button.enabled = False
            self.worker.quit()

    def _on_event(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, ProgressEvent):
            self.progress.value = int(round(100 * event.fraction))
            self.status.value = f"{event.stage}: {event.done} / {event.total}"
        else:
            self.status.value = str(event)
