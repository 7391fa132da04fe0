"""Deployment log lines as ``%pf_logs`` shows them on the local backend.

promptflow's serving app starts with a dozen lines about exporters and model data collection
(MDC) that a local endpoint never configures -- three of them WARNINGs ("Load mdc related
module failed: No module named 'azureml'", "No metric exporter enabled.") that alarm users
and ask for nothing they can do -- and the router's readiness/liveness probes add a
``GET /health 200`` line every few seconds. Those are folded into one closing line;
``--all`` shows the log as written. Paths under ``$PFMAGIC_HOME`` or the home folder read
as such (promptflow's "Project path: /tmp/…" would put the runner's folder in a saved notebook).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pfmagic.render.paths import shown_in

_NOISE = re.compile(
    r"\]\[(INFO|WARNING)\] - ("
    r"Load mdc related module failed: No module named 'azureml'"
    r"|Init mdc\b.*|Mdc (exporter )?init status: False"
    r"|No connection string detected, app insight \w+ exporter is disabled\."
    r"|No OTEL_EXPORTER_OTLP_\w+ or OTEL_EXPORTER_OTLP_\w+ detected,"
    r" OTLP \w+ exporter is disabled\."
    r"|No (metric|log|trace) exporter enabled\."
    r"|Enable 1 trace exporters: \['MdcExporter'\]\."
    r")\s*$"
)
_PROBE = re.compile(r'"GET /health HTTP/1\.[01]" 200\b')


def readable(lines: Sequence[str], limit: int) -> tuple[list[str], str]:
    """The last ``limit`` lines worth reading, and a note on what was folded ("" if none)."""
    kept: list[str] = []
    noise = probes = 0
    for line in lines:
        if _NOISE.search(line):
            noise += 1
        elif _PROBE.search(line):
            probes += 1
        else:
            kept.append(shown_in(line))
    parts = []
    if noise:
        parts.append(f"{noise} start-up line(s) of promptflow about exporters not set up locally")
    if probes:
        parts.append(f"{probes} health probe(s)")
    note = f"({' and '.join(parts)} folded: --all shows them)" if parts else ""
    return kept[-limit:], note
