"""nbval plugin: apply ``update_display_data`` like Jupyter frontends and nbclient do.

pfmagic's progress views show a live display (``display(..., display_id=True)``) and update it
in place until the operation ends, so a saved notebook shows the final state ("deploy …:
Succeeded"). nbval 0.11 records the first ``display_data`` and drops the updates ("unhandled
iopub msg: update_display_data"), so it would compare the *initial* state with the stored
*final* one. Loaded into nbval's run with ``-p test_notebooks_nbval_updates``, this module keeps
each display's data dict by ``display_id`` and updates it in place when an update arrives (nbval
stores that same dict in the cell's outputs), which is what nbclient does when it saves.

The outer test suite collects this file too: ``test_update_is_applied`` checks the patch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nbformat import NotebookNode


def applying_updates(read: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap nbval's ``get_kernel_message(self, timeout, stream)``."""

    def get_kernel_message(self: Any, timeout: Any = None, stream: str = "iopub") -> Any:
        msg = read(self, timeout=timeout, stream=stream)
        displays: dict[str, dict[str, Any]] = self.__dict__.setdefault("_pf_displays", {})
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        content = msg.get("content", {})
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id and kind in ("display_data", "execute_result"):
            # nbval does ``out["data"] = content["data"]``: a NotebookNode is stored as is (a
            # plain dict would be copied), so updating it below updates the recorded output
            content["data"] = NotebookNode(content.get("data", {}))
            content["metadata"] = NotebookNode(content.get("metadata", {}))
            displays[display_id] = content
        elif display_id and kind == "update_display_data" and display_id in displays:
            shown = displays[display_id]
            shown["data"].clear()
            shown["data"].update(content.get("data", {}))
            shown.setdefault("metadata", {}).clear()
            shown["metadata"].update(content.get("metadata", {}))
        return msg

    get_kernel_message._applies_display_updates = True  # type: ignore[attr-defined]
    return get_kernel_message


def install() -> None:
    from nbval.plugin import IPyNbFile

    if not getattr(IPyNbFile.get_kernel_message, "_applies_display_updates", False):
        IPyNbFile.get_kernel_message = applying_updates(IPyNbFile.get_kernel_message)


def pytest_configure(config: Any) -> None:  # active only when loaded with -p
    install()


def test_update_is_applied() -> None:
    messages = iter(
        [
            {
                "msg_type": "display_data",
                "content": {
                    "data": {"text/plain": "deploy: InProgress"},
                    "metadata": {},
                    "transient": {"display_id": "d1"},
                },
            },
            {
                "msg_type": "display_data",
                "content": {
                    "data": {"text/plain": "other"},
                    "metadata": {},
                    "transient": {"display_id": "d2"},
                },
            },
            {
                "msg_type": "update_display_data",
                "content": {
                    "data": {"text/plain": "deploy: Succeeded"},
                    "metadata": {},
                    "transient": {"display_id": "d1"},
                },
            },
        ]
    )

    class File:  # stands in for nbval's IPyNbFile
        pass

    read = applying_updates(lambda self, timeout=None, stream="iopub": next(messages))
    nb_file = File()
    outputs = []
    for _ in range(2):  # what nbval does with a display_data message
        out = NotebookNode(output_type="display_data")
        out["data"] = read(nb_file)["content"]["data"]
        outputs.append(out)
    read(nb_file)
    assert [o["data"] for o in outputs] == [
        {"text/plain": "deploy: Succeeded"},
        {"text/plain": "other"},
    ]


def test_install_patches_nbval_once() -> None:
    from nbval.plugin import IPyNbFile

    before = IPyNbFile.get_kernel_message
    install()
    install()
    assert getattr(IPyNbFile.get_kernel_message, "_applies_display_updates", False)
    if getattr(before, "_applies_display_updates", False):
        assert IPyNbFile.get_kernel_message is before
