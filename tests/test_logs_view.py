"""``%pf_logs`` on the local backend folds promptflow's exporter start-up lines and the
router's health probes into one closing line (issue 18); ``--all`` shows the log as written.
The lines below are the real start-up of promptflow 1.18.5's serving app (notebook 01)."""

from __future__ import annotations

import pytest

from pfmagic.render.logs import readable

STARTUP = """\
2026-12-03 13:17:32 [pfmagic] creating deployment blue (generation 1, model m:1, 1 instance(s))
[pfmagic] instance blue-1-0 starting (pid 6772)
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Create extension with type: azureml
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Init mdc...
[2026-12-03 13:17:45 +0000][pfserving-app-v2][WARNING] - Load mdc related module failed: No module named 'azureml'
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Mdc init status: False
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - No connection string detected, app insight metric exporter is disabled.
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - No OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT detected, OTLP metric exporter is disabled.
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Init mdc for app_traces...
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Mdc exporter init status: False
[2026-12-03 13:17:45 +0000][pfserving-app-v2][WARNING] - No metric exporter enabled.
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Enable 1 trace exporters: ['MdcExporter'].
[2026-12-03 13:17:45 +0000][pfserving-app-v2][WARNING] - No log exporter enabled.
[2026-12-03 13:17:45 +0000][pfserving-app-v2][INFO] - Promptflow executor initiated successfully.
[pfmagic] instance blue-1-0 app created in 0.4 s
INFO:      - "GET /health HTTP/1.1" 200 OK
INFO:      - "GET /health HTTP/1.1" 200 OK
INFO:      - "GET /health HTTP/1.1" 503 Service Unavailable
[2026-12-03 13:17:50 +0000][pfserving-app-v2][WARNING] - Load tool failed: No module named 'azureml'
""".splitlines()  # noqa: E501


def test_exporter_lines_and_probes_fold_into_one_note() -> None:
    kept, note = readable(STARTUP, 100)
    assert not any("exporter" in line or "mdc" in line.lower() for line in kept)
    assert not any('"GET /health HTTP/1.1" 200' in line for line in kept)
    assert note == (
        "(10 start-up line(s) of promptflow about exporters not set up locally and "
        "2 health probe(s) folded: --all shows them)"
    )
    # what a user can act on stays: a failing probe, any other warning, pfmagic's own lines
    assert any("503 Service Unavailable" in line for line in kept)
    assert kept[-1].endswith("Load tool failed: No module named 'azureml'")
    assert kept[0].endswith("creating deployment blue (generation 1, model m:1, 1 instance(s))")


def test_limit_counts_readable_lines_and_nothing_folded_means_no_note() -> None:
    kept, note = readable(STARTUP, 3)
    assert len(kept) == 3 and kept[-1].endswith("Load tool failed: No module named 'azureml'")
    kept, note = readable(["a", "b"], 5)
    assert (kept, note) == (["a", "b"], "")


def test_paths_under_the_home_read_as_the_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """promptflow's "Project path" line named the runner's temporary home in a saved notebook."""
    monkeypatch.setenv("PFMAGIC_HOME", "/tmp/pfmagic-run-cpmo8rgb")
    line = (
        "[2026-12-03 12:00:00,000][promptflow][INFO] - Project path: "
        "/tmp/pfmagic-run-cpmo8rgb/endpoints/ep/deployments/blue/g1/model"
    )
    kept, _note = readable([line, "/tmp/pfmagic-run-cpmo8rgbX/other stays", "/tmp/x"], 5)
    assert kept[0].endswith("Project path: $PFMAGIC_HOME/endpoints/ep/deployments/blue/g1/model")
    assert kept[1:] == ["/tmp/pfmagic-run-cpmo8rgbX/other stays", "/tmp/x"]  # not its prefix
