"""Quota calculator: SKU picker + instance slider → cores needed, workspace usage, verdict.

Every change of the picker or slider recomputes ``self.check`` (a ``pfmagic.skus.QuotaCheck``)
at once; the Apply button writes the choice into the parsed deployment entity of the session.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from pfmagic.render.style import badge
from pfmagic.skus import (
    DEFAULT_SKU,
    SKUS,
    QuotaCheck,
    check_quota,
    deployment_choice,
    sku_info,
)

from .text import MARKS, quota_text, skip_list
from .twin import TextTwinBox

UsageSource = Callable[[], "dict[str, tuple[int, int]] | None"]
MAX_INSTANCES = 50
KINDS: dict[str, Any] = {
    "All": lambda sku: True,
    "CPU": lambda sku: not sku.gpus,
    "GPU": lambda sku: bool(sku.gpus),
}
# Apply asks for a second click above these (a slip of the slider can cost a lot)
CONFIRM_INSTANCES = 10
CONFIRM_VCPUS = 64


class QuotaCalculator(TextTwinBox):
    """``QuotaCalculator(deployment=None, usage=None | dict | callable, backend_name='local')``.

    ``usage`` is ``Backend.quota_usage()``'s result, or a callable returning it (called on a
    background thread so a slow workspace call doesn't hold the cell).
    """

    def __init__(
        self,
        deployment: Any = None,
        *,
        usage: UsageSource | dict | None = None,
        backend_name: str = "local",
        sku: str | None = None,
        instances: int | None = None,
        read_now: bool = True,
        **kwargs: Any,
    ):
        self.deployment = deployment
        self.backend_name = backend_name
        self.usage: dict[str, tuple[int, int]] | None = None
        self.usage_error: str | None = None
        self.usage_loaded = threading.Event()
        dep_sku, dep_count, self.kubernetes = (
            deployment_choice(deployment) if deployment is not None else (DEFAULT_SKU, 1, False)
        )
        start_sku = sku or dep_sku
        info = sku_info(start_sku)
        self._extra = (
            [(f"{start_sku} (not in the SKU list)", start_sku)]
            if info is None and not self.kubernetes
            else []
        )
        # 85 SKUs: narrowed by kind (CPU / GPU) and by a text filter (ipywidgets has no optgroup)
        self.kind = w.ToggleButtons(
            options=list(KINDS),
            value="All",
            description="Show",
            style={"description_width": "90px", "button_width": "70px"},
            tooltips=["every SKU", "no GPU", "with a GPU"],
        )
        self.search = w.Text(
            placeholder="filter: E16, NC, A100, family…",
            layout=w.Layout(width="260px"),
            continuous_update=True,
        )
        self.picker = w.Dropdown(
            options=self._options(),
            value=info.name if info else (start_sku if not self.kubernetes else DEFAULT_SKU),
            description="VM SKU",
            layout=w.Layout(width="640px"),
            style={"description_width": "90px"},
        )
        count = max(1, int(instances or dep_count))
        self.slider = w.IntSlider(
            value=count,
            min=1,
            max=max(MAX_INSTANCES, count),
            description="Instances",
            continuous_update=True,
            layout=w.Layout(width="640px"),  # 1-50 in 115 px could not be set one by one
            style={"description_width": "90px"},
        )
        self.header = w.HTML()
        self.sku_box = w.HTML()
        self.formula_box = w.HTML()
        self.result_box = w.HTML()
        self.warn_box = w.HTML()
        self.skip_box = w.HTML(
            "<details><summary>SKUs without the 20 % reservation</summary>"
            f"<small>{html.escape(skip_list())}: these need instances × vCPUs.</small></details>"
        )
        self.apply_button = w.Button(
            description="Apply to deployment",
            icon="check",
            disabled=deployment is None,
            layout=w.Layout(width="auto"),
            tooltip="Write the SKU and instance count into the parsed "
            "deployment of this session (the cell is unchanged)",
        )
        self.apply_status = w.HTML()
        # Under a validation-only cell the workspace is asked only on request (it may prompt
        # for a sign-in); %pf_quota, asked for the quota, reads it at once (read_now).
        self._usage_source: UsageSource | None = usage if callable(usage) else None
        self._reading = False
        self.read_button = w.Button(
            description="Read workspace quota",
            icon="cloud-download",
            layout=w.Layout(width="auto", display="" if callable(usage) else "none"),
            tooltip="Ask the workspace for its vCPU usage (may sign in)",
        )
        self.read_button.on_click(lambda _b: self.read_usage())
        self.locked = False  # a deploy of this deployment runs or succeeded
        self._pending: tuple[str, int] | None = None  # a large choice waiting for confirmation
        self.apply_button.on_click(lambda _b: self.apply())
        self.check: QuotaCheck = check_quota(
            start_sku, count, backend_name=backend_name, kubernetes=self.kubernetes
        )
        self.filters = w.HBox([self.kind, self.search])
        self.picker.observe(self._changed, names="value")
        self.kind.observe(self._filter, names="value")
        self.search.observe(self._filter, names="value")
        self.slider.observe(self._changed, names="value")
        if self.kubernetes:
            self.picker.layout.display = "none"  # instance types live on the cluster
            self.filters.layout.display = "none"
            self.skip_box.layout.display = "none"
        super().__init__(
            children=[
                self.header,
                self.filters,
                self.picker,
                self.slider,
                self.sku_box,
                self.formula_box,
                self.result_box,
                self.warn_box,
                self.skip_box,
                w.HBox([self.read_button, self.apply_button, self.apply_status]),
            ],
            **kwargs,
        )
        self._k8s_type = dep_sku if self.kubernetes else ""
        if callable(usage):
            if read_now:
                self.read_usage()
        else:
            self.usage = usage
            self.usage_loaded.set()
        self.update()

    # -- state -------------------------------------------------------------------------
    @property
    def sku(self) -> str:
        return self._k8s_type if self.kubernetes else str(self.picker.value)

    @property
    def instances(self) -> int:
        return int(self.slider.value)

    def read_usage(self) -> None:
        """Ask the workspace for its usage (in the background; once)."""
        if self._usage_source is None or self._reading:
            return
        self._reading = True
        self.read_button.disabled = True
        self.read_button.layout.display = "none"
        threading.Thread(
            target=self._load_usage,
            args=(self._usage_source,),
            daemon=True,
            name="pfmagic-quota-usage",
        ).start()

    def _load_usage(self, source: UsageSource) -> None:
        try:
            self.usage = source()
        except Exception as exc:  # quota is advice: a failing call must not break the cell
            self.usage_error = f"could not read workspace quota: {exc}"
        finally:
            self.usage_loaded.set()
            self.update()

    def _options(self) -> list[tuple[str, str]]:
        """Picker entries for the chosen kind and filter text (case-insensitive, any field)."""
        wanted = KINDS[self.kind.value]
        words = self.search.value.lower().split()
        shown = [
            (s.label(), s.name)
            for s in SKUS
            if wanted(s) and all(word in s.label().lower() for word in words)
        ]
        return self._extra + shown

    def _filter(self, _change: dict[str, Any]) -> None:
        current = self.picker.value
        options = self._options()
        names = [name for _label, name in options]
        if current not in names:  # keep the chosen SKU visible: a filter never changes it
            chosen = next((label for label, name in self.picker.options if name == current), None)
            if chosen is not None:
                options = [(chosen, current), *options]
        self.picker.options = options
        self.picker.value = current

    def _changed(self, _change: dict[str, Any]) -> None:
        if self._pending is not None:  # a new choice needs its own confirmation
            self._pending = None
            self._reset_apply()
        self.update()

    def set_locked(self, locked: bool) -> None:
        """While a deploy runs (and after it succeeded) the parsed deployment is not edited."""
        self.locked = locked
        self.apply_button.disabled = locked or self.deployment is None
        if locked:
            self.apply_status.value = "<small>locked while this deployment deploys</small>"

    def _reset_apply(self) -> None:
        self.apply_button.description = "Apply to deployment"
        self.apply_button.button_style = ""
        self.apply_status.value = ""

    def large(self) -> str:
        """Why the current choice needs confirmation ("" when it does not)."""
        vcpus = self.check.sku.vcpus * self.instances if self.check.sku else None
        if self.instances > CONFIRM_INSTANCES or (vcpus or 0) > CONFIRM_VCPUS:
            return f"{self.instances} × {self.sku}" + (f" = {vcpus} vCPUs" if vcpus else "")
        return ""

    def update(self) -> QuotaCheck:
        """Recompute the check from the picker, the slider and the usage; redraw."""
        check = check_quota(
            self.sku,
            self.instances,
            self.usage,
            backend_name=self.backend_name,
            kubernetes=self.kubernetes,
        )
        if self.usage is None and self.backend_name != "local":
            if self._usage_source is not None and not self._reading:
                check.message = "workspace usage not read (Read workspace quota); " + check.message
            elif not self.usage_loaded.is_set():
                check.message = "reading workspace quota… " + check.message
            elif self.usage_error:
                check.message = f"{self.usage_error}; {check.message}"
        self.check = check
        self._draw(check)
        return check

    def _draw(self, check: QuotaCheck) -> None:
        name = getattr(self.deployment, "name", None)
        where = f" for deployment <b>{html.escape(name)}</b>" if name else ""
        self.header.value = (
            f"<b>Quota</b>{where} <small>({html.escape(self.backend_name)} backend)</small>"
        )
        sku = check.sku
        if sku is not None:
            gpu = f", {sku.gpus_text} GPU" if sku.gpus else ""
            note = f" · {html.escape(sku.note)}" if sku.note else ""
            self.sku_box.value = (
                f"{sku.vcpus} vCPU{gpu}, {sku.memory_gib:g} GiB memory · "
                f"family <code>{html.escape(sku.family)}</code>{note}"
            )
            self.formula_box.value = f"<code>{html.escape(check.formula)}</code>"
        else:
            self.sku_box.value = ""
            self.formula_box.value = ""
        needed = f"<b>{check.needed} vCPUs needed</b>" if check.needed is not None else ""
        if check.needed is not None and check.available is not None:
            left = check.available - check.needed
            needed += (
                f" <small>· {check.available} of {check.limit} free in the family now, "
                f"{left} left after this deployment</small>"
            )
        needed += "<br>" if needed else ""
        self.result_box.value = (
            f"{needed}{badge(check.verdict, MARKS.get(check.verdict, '·'))} {_link(check.message)}"
        )
        self.warn_box.value = "".join(f"<div>⚠ {html.escape(x)}</div>" for x in check.warnings)

    def apply(self) -> str:
        """Write the chosen SKU and instance count into the session's deployment entity.

        A large choice (> 10 instances or > 64 vCPUs) is written on a second, confirming click.
        """
        if self.deployment is None or self.locked:
            return ""
        big = self.large()
        if big and self._pending != (self.sku, self.instances):
            self._pending = (self.sku, self.instances)
            self.apply_button.description = "Confirm apply"
            self.apply_button.button_style = "warning"
            msg = f"{big} is large: click Confirm apply to write it"
            self.apply_status.value = f"<small>{html.escape(msg)}</small>"
            return msg
        self._pending = None
        self._reset_apply()
        if not self.kubernetes:
            self.deployment.instance_type = self.sku
        self.deployment.instance_count = self.instances
        msg = (
            f"applied: instance_type={self.deployment.instance_type}, "
            f"instance_count={self.instances} on the parsed deployment (edit the cell to "
            "keep it)"
        )
        self.apply_status.value = f"<small>{html.escape(msg)}</small>"
        return msg

    # -- text twin ---------------------------------------------------------------------
    def html(self) -> str:
        """The calculator's current answer without its controls (saved notebooks, nbconvert)."""
        parts = [self.header, self.sku_box, self.formula_box, self.result_box, self.warn_box]
        return "".join(f"<div>{p.value}</div>" for p in parts if p.value)

    def text(self) -> str:
        name = getattr(self.deployment, "name", None)
        return quota_text(self.check, title=f"Quota for {name}" if name else None)


def _link(message: str) -> str:
    """Escape, then make the URLs in a verdict clickable."""
    out = html.escape(message)
    for word in set(message.split()):
        url = word.strip("().,;")
        if url.startswith("https://"):
            safe = html.escape(url)
            out = out.replace(safe, f"<a href='{safe}' target='_blank'>{safe}</a>")
    return out
