"""A modal screen that can only be dismissed once.

Why: Textual's ``dismiss`` calls the result callback and pops the top screen every time it is
called. Two Enters that arrive before the first pop has run (a fast typist, a busy app after a
resize) called it twice: the callback ran twice and the second pop took the main screen away
(``ScreenStackError: Can't pop screen``). Every chatterm modal derives from this class, so a
dialog closes once however many keys arrive.
"""

from __future__ import annotations

from typing import TypeVar

from textual.await_complete import AwaitComplete
from textual.screen import ModalScreen

ResultType = TypeVar("ResultType")


class OnceModal(ModalScreen[ResultType]):
    """``dismiss`` works the first time and is a no-op afterwards (or when not on top)."""

    _dismissed: bool = False

    @property
    def dismissed(self) -> bool:
        return self._dismissed

    def dismiss(self, result: ResultType | None = None) -> AwaitComplete:
        if self._dismissed or not self.is_attached or self.app.screen is not self:
            return AwaitComplete.nothing()
        self._dismissed = True
        return super().dismiss(result)
