"""What long work reports its progress to (rich's Progress fits; `SilentProgress` is a no-op), without
torch: preparing data reports to it as training does."""

from __future__ import annotations

from typing import Any


class Progress:
    """What the engine needs from a progress display (rich's Progress fits; `SilentProgress` is a no-op)."""

    def add_task(self, description: str, total: int) -> Any: ...
    def advance(self, task_id: Any, amount: int = 1) -> None: ...
    def update(self, task_id: Any, **kwargs: Any) -> None: ...
    def remove_task(self, task_id: Any) -> None: ...


class SilentProgress(Progress):
    def add_task(self, description: str, total: int) -> int:
        return 0

    def advance(self, task_id: Any, amount: int = 1) -> None:
        pass

    def update(self, task_id: Any, **kwargs: Any) -> None:
        pass

    def remove_task(self, task_id: Any) -> None:
        pass
