"""A display shown once when made (the sidebar, its fallbacks): shared by ``llm_sidebar`` and
``_sidecar`` without either importing the other."""

from __future__ import annotations

__all__ = ["_Shown"]


def _execution_count() -> int | None:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    shell = get_ipython()  # type: ignore[no-untyped-call, unused-ignore]
    return getattr(shell, "execution_count", None)


class _Shown:
    """Shown once when made; the same cell's result display then adds nothing (no duplicate),
    while displaying it again later shows it again."""

    _shown_in: int | object | None = object()

    def _show(self) -> None:
        self._shown_in = _execution_count()
        self._render(first=True)

    def _ipython_display_(self) -> None:
        if self._shown_in == _execution_count():
            return
        self._shown_in = _execution_count()
        self._render(first=False)

    def _render(self, first: bool) -> None:
        raise NotImplementedError
