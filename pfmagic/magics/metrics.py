"""``%pf_metrics``: an endpoint's requests, errors, latency and tokens per deployment."""

from __future__ import annotations

import time
from typing import Any

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pfmagic.errors import PfError, usage_errors
from pfmagic.magics.base import SessionMagics
from pfmagic.metrics.window import format_window, parse_window


@magics_class
class MetricsMagics(SessionMagics):
    @magic_arguments()
    @argument("endpoint", nargs="?", help="Endpoint (default: the last one used).")
    @argument("-d", "--deployment", metavar="NAME", help="Only this deployment.")
    @argument("-w", "--window", default="15m", help="How far back: 30s, 15m, 1h, 2d.")
    @argument(
        "--live", action="store_true", help="Redraw in place while traffic flows (Ctrl-C stops)."
    )
    @argument("--every", type=float, default=5.0, metavar="S", help="--live: seconds between.")
    @argument("--refreshes", type=int, default=60, metavar="N", help="--live: stop after N.")
    @argument("-o", "--output", metavar="VAR", help="Store the EndpointMetrics in VAR.")
    @line_magic
    @usage_errors
    def pf_metrics(self, line: str) -> Any:
        """Requests, errors (non-2xx), p50/p95/p99 latency, tokens, CPU and memory per
        deployment, as a small figure with the table beside it. ``.frame`` is a pandas
        DataFrame, ``.series`` the per-interval rows, ``.unauthorized`` the 401s. On Azure,
        tokens (with their prompt/completion split) come from the workspace's Application
        Insights for deployments with ``app_insights_enabled: true``; elsewhere they show as
        ``unknown`` and ``.notes`` says why.

        Examples::

            %pf_metrics my-endpoint
            %pf_metrics my-endpoint --deployment green --window 1h
            m = %pf_metrics my-endpoint
            m.frame.loc["green", "p95_ms"]
            %pf_metrics my-endpoint --live --every 2 --refreshes 30
        """
        args = parse_argstring(self.pf_metrics, line)
        window = parse_window(args.window)
        endpoint = self.session.endpoint_name(args.endpoint)
        backend = self.session.backend
        if args.live:
            if args.every <= 0 or args.refreshes < 1:
                raise PfError("--every must be positive and --refreshes at least 1")
            result = self._live(backend, endpoint, args.deployment, window, args)
        else:
            result = backend.metrics(endpoint, deployment=args.deployment, window=window)
            if not result.has_traffic:
                raise PfError(
                    f"{endpoint}: no traffic yet in the last {format_window(window)}",
                    hint="send requests with %pf_invoke, or widen --window",
                )
        if args.output:
            self.push(args.output, result)
            return None
        return None if args.live else result

    def _live(self, backend: Any, endpoint: str, deployment: str | None, window: float, args: Any):  # noqa: ANN202
        """One display, updated in place (``display_id``) every ``--every`` seconds."""
        from IPython.display import display

        result = backend.metrics(endpoint, deployment=deployment, window=window)
        handle = display(result, display_id=True)
        try:
            for _ in range(args.refreshes - 1):
                time.sleep(args.every)
                result = backend.metrics(endpoint, deployment=deployment, window=window)
                if handle is not None:
                    handle.update(result)
        except KeyboardInterrupt:  # the way to stop a live view: keep the last picture
            pass
        return result


MAGICS = MetricsMagics
