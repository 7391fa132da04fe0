"""Operations on live endpoints: backend choice, status, logs, traffic, keys, delete, list."""

from __future__ import annotations

import time
from typing import Any

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pfmagic.errors import PfError, usage_errors
from pfmagic.magics.base import SessionMagics
from pfmagic.traffic import check_traffic, parse_mirror, parse_weights

CONTAINERS = ("storage-initializer", "inference-server")


def new_lines(previous: list[str], current: list[str]) -> list[str]:
    """Lines of ``current`` (a log tail) that follow what ``previous`` (an older tail) showed."""
    if not previous:
        return current
    for shift in range(len(previous) + 1):
        overlap = previous[shift:]
        if current[: len(overlap)] == overlap:
            return current[len(overlap) :]
    return current


class LogText(str):
    """Log lines that display as lines (a plain ``str`` would show as one quoted repr)."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self) or "(no log lines yet)")


@magics_class
class OpsMagics(SessionMagics):
    """Line magics acting on endpoints of the active backend."""

    @magic_arguments()
    @argument("name", nargs="?", choices=("local", "azure"), help="Backend to switch to.")
    @argument("--subscription", metavar="ID", help="Azure subscription id.")
    @argument("--resource-group", metavar="NAME", help="Azure resource group.")
    @argument("--workspace", metavar="NAME", help="Azure ML workspace.")
    @argument("--config", metavar="PATH", help="Workspace config.json (instead of the three).")
    @argument(
        "--credential",
        choices=("default", "browser"),
        help="default: DefaultAzureCredential; browser: interactive login.",
    )
    @argument(
        "--fill-prt-config",
        action="store_true",
        help="Fill <placeholders> in PRT_CONFIG_OVERRIDE from the workspace at create.",
    )
    @argument(
        "--telemetry",
        action="store_true",
        help="Let azure-ai-ml send its telemetry (off by default).",
    )
    @line_magic
    @usage_errors
    def pf_backend(self, line: str) -> None:
        """Show or switch the backend endpoints are deployed to.

        Examples::

            %pf_backend
            %pf_backend local
            %pf_backend azure --subscription 0000-… --resource-group rg --workspace ws
            %pf_backend azure --config config.json --credential browser
            %pf_backend azure --fill-prt-config   # config.json found like MLClient.from_config
        """
        args = parse_argstring(self.pf_backend, line)
        azure_opts = {
            "subscription_id": args.subscription,
            "resource_group": args.resource_group,
            "workspace": args.workspace,
            "config_path": args.config,
            "credential": args.credential,
            "fill_prt_config": args.fill_prt_config,
            "enable_telemetry": args.telemetry,
        }
        given = {k: v for k, v in azure_opts.items() if v}
        if args.name is None:
            if given:
                raise PfError(
                    "name the backend these options are for", hint="%pf_backend azure --workspace …"
                )
            print(self.session.backend.describe())
            return
        if args.name == "local" and given:
            raise PfError("the local backend takes no Azure options")
        if args.config and (args.subscription or args.resource_group or args.workspace):
            raise PfError("give either --config or --subscription/--resource-group/--workspace")
        from pfmagic.backends import make_backend

        backend = make_backend(args.name, settings=self.settings, **given)
        self.session.use_backend(backend)
        print(backend.describe())

    @magic_arguments()
    @argument("endpoint", nargs="?", help="Endpoint (default: the last one used).")
    @argument("deployment", nargs="?", help="One deployment of it.")
    @argument("-o", "--output", metavar="VAR", help="Store the entity in VAR.")
    @line_magic
    @usage_errors
    def pf_status(self, line: str) -> Any:
        """Show an endpoint (state, scoring URI, traffic, deployments) or one deployment.

        Returns azure-ai-ml's ``OnlineEndpoint`` / ``OnlineDeployment`` as filled by the backend.

        Examples::

            %pf_status
            ep = %pf_status basic-chat-endpoint
            %pf_status basic-chat-endpoint blue
        """
        from pfmagic.render.status import deployment_status, endpoint_status

        args = parse_argstring(self.pf_status, line)
        name = self.session.endpoint_name(args.endpoint)
        backend = self.session.backend
        ep = backend.get_endpoint(name)
        if args.deployment:
            result = deployment_status(
                backend.get_deployment(name, args.deployment), dict(ep.traffic or {})
            )
        else:
            result = endpoint_status(ep, backend.list_deployments(name))
        return self._result(result, args.output)

    @magic_arguments()
    @argument("endpoint")
    @argument("deployment")
    @argument("--lines", type=int, default=100, metavar="N", help="Tail length (default 100).")
    @argument(
        "--follow",
        action="store_true",
        help="Keep printing new lines (until Ctrl-C or --for seconds).",
    )
    @argument(
        "--for",
        dest="follow_for",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="How long --follow polls (default 60).",
    )
    @argument(
        "--container",
        choices=CONTAINERS,
        help="Which container's log (Azure: storage-initializer or inference-server).",
    )
    @argument(
        "--build",
        action="store_true",
        help="The environment build log (local backend: uv's output; Azure's image build).",
    )
    @argument(
        "--all",
        dest="show_all",
        action="store_true",
        help="Every line as written (local: promptflow's exporter start-up lines and the "
        "health probes are folded by default).",
    )
    @line_magic
    @usage_errors
    def pf_logs(self, line: str) -> LogText | None:
        """Show the last lines of a deployment's logs (``az ml online-deployment get-logs``).

        Returns the text (a ``str``) so ``logs = %pf_logs ep blue`` keeps it; ``--follow``
        prints new lines as they come instead and returns nothing.

        Examples::

            %pf_logs basic-chat-endpoint blue
            %pf_logs basic-chat-endpoint blue --lines 20 --container storage-initializer
            logs = %pf_logs basic-chat-endpoint blue
            %pf_logs basic-chat-endpoint blue --follow --for 30
            %pf_logs basic-chat-endpoint blue --build
            %pf_logs basic-chat-endpoint blue --all
        """
        args = parse_argstring(self.pf_logs, line)
        if args.lines < 1:
            raise PfError("--lines must be at least 1")
        backend = self.session.backend
        if args.build:
            if backend.name != "local":
                raise PfError(
                    "--build: Azure keeps the image build log with the environment "
                    "(studio: Environments -> the deployment's environment -> Build log)",
                    hint="%pf_deployment --check-env runs the same build locally first",
                )
            args.container = "build"
        self.session.endpoint_name(args.endpoint)

        from pfmagic.render.logs import readable

        fold = backend.name == "local" and not args.show_all and args.container != "build"
        note = ""

        def tail() -> list[str]:
            nonlocal note
            # folding drops lines: read more so that --lines readable ones remain
            wanted = args.lines * 4 + 50 if fold else args.lines
            text = backend.get_logs(
                args.endpoint, args.deployment, lines=wanted, container_type=args.container
            )
            if not fold:
                return text.splitlines()[-args.lines :]
            kept, note = readable(text.splitlines(), args.lines)
            return kept

        shown = tail()
        if not args.follow:
            return LogText("\n".join([*shown, note] if note else shown))
        print("\n".join(shown) if shown else "(no log lines yet)", flush=True)
        deadline = time.monotonic() + args.follow_for
        try:
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                current = tail()
                fresh = new_lines(shown, current)
                if fresh:
                    print("\n".join(fresh), flush=True)
                shown = current
        except KeyboardInterrupt:  # Ctrl-C ends following, not the cell with a traceback
            pass
        return None

    @magic_arguments()
    @argument("endpoint")
    @argument(
        "weights",
        nargs="*",
        metavar="DEPLOYMENT=PERCENT",
        help="New live traffic, e.g. blue=90 green=10 (none: show the current split).",
    )
    @argument(
        "--mirror",
        action="append",
        default=[],
        metavar="DEPLOYMENT=PERCENT",
        help="Copy this share of live traffic to one deployment (at most 50); "
        "'none' (or DEPLOYMENT=0) stops mirroring.",
    )
    @argument("-o", "--output", metavar="VAR", help="Store the endpoint in VAR.")
    @line_magic
    @usage_errors
    def pf_traffic(self, line: str) -> Any:
        """Split an endpoint's live traffic between deployments, optionally mirror some.

        Weights are whole percentages summing to 100 (or all 0). Deployments not named get 0.
        Without ``--mirror`` the current mirror is kept; ``--mirror none`` removes it.

        Examples::

            %pf_traffic basic-chat-endpoint
            %pf_traffic basic-chat-endpoint blue=100
            %pf_traffic basic-chat-endpoint blue=90 green=10
            %pf_traffic basic-chat-endpoint blue=100 --mirror green=10
            %pf_traffic basic-chat-endpoint --mirror none
        """
        from pfmagic.render.status import endpoint_status

        args = parse_argstring(self.pf_traffic, line)
        traffic = parse_weights(args.weights)
        mirror = parse_mirror(args.mirror)
        if traffic:  # fail before touching the backend
            check_traffic(traffic, mirror or {})
        name = self.session.endpoint_name(args.endpoint)
        backend = self.session.backend
        if not traffic and mirror is None:
            return self._result(endpoint_status(backend.get_endpoint(name)), args.output)
        current = {d: int(p) for d, p in (backend.get_endpoint(name).traffic or {}).items()}
        if traffic:  # deployments not named get 0 (backends differ: some merge, some replace)
            traffic = {**{d: 0 for d in current}, **traffic}
        else:  # only the mirror changes
            traffic = current
            check_traffic(traffic, mirror or {})
        # backends: None keeps the current mirror, {} clears it
        ep = backend.set_traffic(name, traffic, mirror)
        before = current if traffic != current else None  # before → after only on a change
        return self._result(endpoint_status(ep, before=before), args.output)

    @magic_arguments()
    @argument("endpoint", nargs="?", help="Endpoint (default: the last one used).")
    @argument(
        "--regenerate",
        choices=("primary", "secondary"),
        help="Replace this key first (key auth only).",
    )
    @argument("-o", "--output", metavar="VAR", help="Store the keys in VAR.")
    @line_magic
    @usage_errors
    def pf_keys(self, line: str) -> Any:
        """Get an endpoint's keys (or token); secrets are shown as ****.

        Returns azure-ai-ml's ``EndpointAuthKeys`` / ``EndpointAuthToken``: read
        ``keys.primary_key`` / ``token.access_token`` to use one.

        Examples::

            keys = %pf_keys basic-chat-endpoint
            %pf_keys basic-chat-endpoint --regenerate secondary
        """
        from pfmagic.render.keys import masked

        args = parse_argstring(self.pf_keys, line)
        name = self.session.endpoint_name(args.endpoint)
        backend = self.session.backend
        if args.regenerate:
            backend.regenerate_keys(name, args.regenerate)
        return self._result(masked(backend.get_keys(name)), args.output)

    @magic_arguments()
    @argument("endpoint")
    @argument("deployment", nargs="?", help="Delete only this deployment.")
    @argument(
        "--no-wait", action="store_true", help="Return the running operation instead of waiting."
    )
    @argument("--purge", action="store_true", help="Local backend: delete the logs too.")
    @line_magic
    @usage_errors
    def pf_delete(self, line: str) -> Any:
        """Delete an endpoint (with all its deployments) or one deployment.

        Examples::

            %pf_delete basic-chat-endpoint green
            %pf_delete basic-chat-endpoint
            op = %pf_delete basic-chat-endpoint --no-wait
        """
        args = parse_argstring(self.pf_delete, line)
        backend = self.session.backend
        s = self.session
        extra = {"purge": True} if args.purge else {}
        if args.purge and backend.name != "local":
            raise PfError("--purge deletes local logs; it is for the local backend only")
        if args.deployment:
            op = backend.delete_deployment(args.endpoint, args.deployment, **extra)
            s.deployments.pop((args.endpoint, args.deployment), None)
        else:
            op = backend.delete_endpoint(args.endpoint, **extra)
            s.endpoints.pop(args.endpoint, None)
            s.histories.pop(args.endpoint, None)
            for key in [k for k in s.deployments if k[0] == args.endpoint]:
                s.deployments.pop(key)
            if s.last_endpoint == args.endpoint:
                s.last_endpoint = None
        result = self.run_operation(op, wait=not args.no_wait)
        if args.no_wait:
            return result
        what = f"{args.endpoint}/{args.deployment}" if args.deployment else args.endpoint
        print(f"deleted {what}")
        return None

    @magic_arguments()
    @argument("endpoint")
    @line_magic
    @usage_errors
    def pf_stop(self, line: str) -> None:
        """Stop a local endpoint (router and instances); state, keys and logs are kept.

        Examples::

            %pf_stop basic-chat-endpoint
        """
        args = parse_argstring(self.pf_stop, line)
        self._local(args.endpoint).stop_endpoint(args.endpoint)
        print(f"stopped {args.endpoint} (%pf_start {args.endpoint} starts it again)")

    @magic_arguments()
    @argument("endpoint")
    @line_magic
    @usage_errors
    def pf_start(self, line: str) -> None:
        """Start a stopped local endpoint again.

        Examples::

            %pf_start basic-chat-endpoint
        """
        args = parse_argstring(self.pf_start, line)
        ep = self._local(args.endpoint).start_endpoint(args.endpoint)
        print(f"started {args.endpoint}: {ep.scoring_uri}")

    def _local(self, endpoint: str) -> Any:
        backend = self.session.backend
        if not hasattr(backend, "stop_endpoint"):
            raise PfError(f"%pf_stop/%pf_start: the {backend.name} backend has no stopped state")
        return backend

    @magic_arguments()
    @argument("-o", "--output", metavar="VAR", help="Store the list in VAR.")
    @line_magic
    @usage_errors
    def pf_endpoints(self, line: str) -> Any:
        """List the backend's endpoints: name, state, scoring URI, traffic, deployments.

        Examples::

            %pf_endpoints
            eps = %pf_endpoints
        """
        from pfmagic.render.status import EndpointTable

        args = parse_argstring(self.pf_endpoints, line)
        backend = self.session.backend
        endpoints = sorted(backend.list_endpoints(), key=lambda e: e.name)
        deployments = {ep.name: backend.list_deployments(ep.name) for ep in endpoints}
        return self._result(EndpointTable(endpoints, deployments), args.output)

    def _result(self, value: Any, var: str | None) -> Any:
        if var:
            from IPython.display import display

            self.push(var, value)
            display(value)
            return None
        return value


MAGICS = OpsMagics
