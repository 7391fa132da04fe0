"""``%pf_metrics``: requests, errors, latency, tokens per deployment (issue 16).

- ``window``: ``"15m"`` / ``"1h"`` / ``"30s"`` → seconds (one-line errors)
- ``model``: ``EndpointMetrics`` -- ``.frame`` (pandas, one row per deployment), ``.series``,
  ``.unauthorized``; shown as a small figure with the table beside it
- ``plot``: the figure (matplotlib, Agg canvas, no pyplot state)

pandas and matplotlib are imported only when metrics are built, never at ``%load_ext``.
"""
