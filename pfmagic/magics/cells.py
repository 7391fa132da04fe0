"""``%%pf_model``, ``%%pf_endpoint``, ``%%pf_deployment``, ``%%pf_connection``: YAML cells.

Parsing lives in ``pfmagic.spec`` (usable without IPython); this module only reads the cell,
stores the result (``VAR``, the session), shows the summary and calls the backend for the
action flags (``--register`` / ``--create``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from IPython.core.magic import line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pfmagic.errors import PfError, usage_errors
from pfmagic.export.source import CellSource, source_key
from pfmagic.magics.base import SessionMagics

_CELL_VAR = re.compile(r"^\s*\$([A-Za-z_]\w*)\s*$")


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    """Arguments every YAML cell takes (listed after the magic's own in ``--help``)."""
    for deco in (
        argument(
            "--no-interpolate",
            action="store_true",
            help="Leave {{name}} as written (no values from the notebook).",
        ),
        argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Override a field, dotted for nested ones, like `az ml ... --set` "
            "(repeatable): --set instance_count=2.",
        ),
        argument(
            "--file",
            metavar="PATH",
            help="Read the YAML from this file (relative to the notebook) instead of the cell.",
        ),
    ):
        func = deco(func)
    return func


def _var(func: Callable[..., Any]) -> Callable[..., Any]:
    return argument(
        "var",
        nargs="?",
        metavar="VAR",
        help="Store the result in this variable (the cell then returns None).",
    )(func)


@magics_class
class CellsMagics(SessionMagics):
    """YAML cells → azure-ai-ml entities kept in the session by name."""

    # -- %%pf_model --------------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    @magic_arguments(name="%pf_model")
    @_var
    @argument(
        "--register",
        action="store_true",
        help="Register the flow folder as a model version on the active backend.",
    )
    @_common
    @usage_errors
    def pf_model(self, line: str, cell: str | None = None) -> Any:
        """Parse a model YAML (azure-ai-ml's ``load_model``): a flow folder to deploy.

        Relative paths are resolved against the notebook's folder; ``{{name}}`` is replaced
        from the notebook. The flow's chat inputs/outputs are checked against the
        ``azureml.promptflow.*`` properties.

        Examples::

            %%pf_model
            name: basic-chat-model
            path: ./flows/basic-chat
            properties:
              azureml.promptflow.source_flow_id: basic-chat
              azureml.promptflow.mode: chat
              azureml.promptflow.chat_input: question
              azureml.promptflow.chat_output: answer

            %%pf_model model --register
            name: basic-chat-model
            path: {{flow_dir}}
        """
        args = parse_argstring(self.pf_model, line)
        parsed, summary = self._parse("model", args, cell)
        model = parsed.entity
        action: Callable[[], str] | None = None
        if args.register:

            def action() -> str:
                registered = self.session.backend.create_model(model)
                self.session.remember(registered)
                if args.var:
                    self.push(args.var, registered)
                return f"registered {registered.name}:{registered.version}"

        return self._finish(args, parsed.entity, summary, action)

    # -- %%pf_endpoint -----------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    @magic_arguments(name="%pf_endpoint")
    @_var
    @argument(
        "--create",
        action="store_true",
        help="Create (or update) the endpoint on the active backend and wait.",
    )
    @_common
    @usage_errors
    def pf_endpoint(self, line: str, cell: str | None = None) -> Any:
        """Parse an online endpoint YAML (azure-ai-ml's ``load_online_endpoint``).

        ``compute:`` makes it a Kubernetes endpoint, as in azure-ai-ml; otherwise managed.
        The name is checked now (3-32 chars, letter first, letters/digits/hyphens), not after
        a network call.

        Examples::

            %%pf_endpoint
            name: basic-chat-endpoint
            auth_mode: key
            properties:
              enforce_access_to_default_secret_stores: enabled

            %%pf_endpoint ep --create
            name: {{endpoint_name}}
            auth_mode: key
        """
        args = parse_argstring(self.pf_endpoint, line)
        parsed, summary = self._parse("endpoint", args, cell)
        endpoint = parsed.entity
        action: Callable[[], str] | None = None
        if args.create:

            def action() -> str:
                op = self.session.backend.create_endpoint(endpoint)
                result = self.run_operation(op, wait=True)
                self.session.last_endpoint = endpoint.name
                return _created_note("endpoint", endpoint.name, result)

        return self._finish(args, endpoint, summary, action)

    # -- %%pf_deployment ---------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    @magic_arguments(name="%pf_deployment")
    @_var
    @argument(
        "--create",
        action="store_true",
        help="Create (or update) the deployment on the active backend.",
    )
    @argument(
        "--all-traffic",
        action="store_true",
        help="With --create: send 100%% of the endpoint's traffic to it afterwards.",
    )
    @argument(
        "--no-wait",
        action="store_true",
        help="With --create: return at once; progress keeps showing under the cell.",
    )
    @argument(
        "--check-env",
        action="store_true",
        help="Resolve and build the environment locally first (seconds, not Azure's "
        "15-25 minutes); stops before --create if it cannot be built.",
    )
    @_common
    @usage_errors
    def pf_deployment(self, line: str, cell: str | None = None) -> Any:
        """Parse an online deployment YAML (azure-ai-ml's ``load_online_deployment``).

        ``type: kubernetes`` makes it a Kubernetes deployment, as in azure-ai-ml; otherwise
        managed. Prompt-flow checks: PROMPTFLOW_RUN_MODE, PRT_CONFIG_OVERRIDE (placeholders are
        an error on Azure), PROMPTFLOW_RESPONSE_INCLUDED_FIELDS, inference_config routes, names,
        chat properties vs the flow. ``azureml:NAME:VERSION`` models parsed earlier in the
        notebook are looked up by name.

        Examples::

            %%pf_deployment
            name: blue
            endpoint_name: basic-chat-endpoint
            model: azureml:basic-chat-model:1
            environment:
              image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
              inference_config:
                liveness_route: {path: /health, port: 8080}
                readiness_route: {path: /health, port: 8080}
                scoring_route: {path: /score, port: 8080}
            instance_type: Standard_E16s_v3
            instance_count: 1
            environment_variables:
              PROMPTFLOW_RUN_MODE: serving

            %%pf_deployment blue --create --all-traffic --set instance_count=2
            ...
        """
        args = parse_argstring(self.pf_deployment, line)
        parsed, summary = self._parse("deployment", args, cell)
        dep = parsed.entity
        action: Callable[[], str] | None = None
        if args.check_env:  # before any create: a broken environment stops here
            from pathlib import Path

            from pfmagic.environments.check import check_environment

            home = Path(self.settings.home).expanduser()

            def warn(line: str) -> None:
                if line.startswith("warning:"):  # uv's progress is not worth a notebook line
                    print(line)

            print(check_environment(dep, self.session.models, home, warn))
        if args.create:

            def action() -> str:
                op = self.session.backend.create_deployment(dep, all_traffic=args.all_traffic)
                op.entity = dep  # the Deploy panel under this cell follows this operation
                self.session.last_endpoint = dep.endpoint_name
                result = self.run_operation(op, wait=not args.no_wait)
                if args.no_wait:
                    return f"deployment {dep.name} started (--no-wait): see %pf_status"
                return _created_note("deployment", dep.name, result)
        elif args.all_traffic or args.no_wait:
            raise PfError("--all-traffic and --no-wait go with --create")
        return self._finish(args, dep, summary, action, panel=True)

    # -- %%pf_connection ---------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    @magic_arguments(name="%pf_connection")
    @_var
    @argument(
        "--create",
        action="store_true",
        help="Store the connection in the active backend (the flow's LLM nodes use it).",
    )
    @argument("--file", metavar="PATH", help="Read the YAML from this file instead of the cell.")
    @argument("--no-interpolate", action="store_true", help="Leave {{name}} as written.")
    @usage_errors
    def pf_connection(self, line: str, cell: str | None = None) -> Any:
        """Parse a promptflow connection YAML (name, type and the type's fields).

        Types: open_ai (api_key, base_url), azure_open_ai (api_base, api_key), custom
        (secrets, configs), serp, serverless, cognitive_search, azure_ai_services, ...
        ``${env:VAR}`` values are kept and resolved when the flow is served. Secrets are never
        shown.

        Examples::

            %%pf_connection --create
            name: open_ai_connection
            type: open_ai
            api_key: ${env:OPENAI_API_KEY}
            base_url: https://api.openai.com/v1
        """
        from pfmagic.spec.connection import parse_connection

        args = parse_argstring(self.pf_connection, line)
        args.set = []
        text, offset = self._text(args, cell)
        if self.settings.interpolate and not args.no_interpolate:
            from pfmagic.spec.interpolate import interpolate

            text, _ = interpolate(text, self.shell.user_ns, line_offset=offset)
        connection = parse_connection(text, line_offset=offset)
        self.session.connections[connection.name] = connection
        self.push(args.var, connection)
        if args.create:
            self.session.backend.create_connection(connection.to_dict())
            print(f"connection {connection.name} stored in the {self.session.backend_name} backend")
        return None if args.var else connection

    # -- shared ------------------------------------------------------------------------------
    def _text(self, args: Any, cell: str | None) -> tuple[str, int]:
        """The YAML and the line it starts on (1 in a cell: the %% line comes first).

        The line form (``%pf_endpoint --file endpoint.yml``) exists for ``--file``, since
        IPython refuses a ``%%`` cell with an empty body."""
        if args.file:
            path = Path(args.file).expanduser()
            path = path if path.is_absolute() else self.notebook_dir() / path
            if cell and cell.strip():
                raise PfError("give either --file or YAML in the cell, not both")
            try:
                return path.read_text(encoding="utf-8"), 0
            except OSError as exc:
                raise PfError(f"cannot read --file {path}: {exc.strerror}") from None
        if cell is None:
            raise PfError("the YAML goes in the cell body (%%, two percent signs), or use --file")
        match = _CELL_VAR.match(cell)
        if match:
            value = self.shell.user_ns.get(match.group(1))
            if not isinstance(value, str):
                what = "not defined" if value is None else f"a {type(value).__name__}"
                raise PfError(f"${match.group(1)} is {what}; the cell needs YAML text")
            return value, 0
        return cell, 1

    def _parse(self, kind: str, args: Any, cell: str | None) -> tuple[Any, Any]:
        from pfmagic.render.entity import EntitySummary
        from pfmagic.spec.load import parse

        text, offset = self._text(args, cell)
        use_ns = self.settings.interpolate and not args.no_interpolate
        base_dir, overrides = self.notebook_dir(), _overrides(args.set)
        parsed = parse(
            kind,
            text,  # type: ignore[arg-type]
            base_dir=base_dir,
            namespace=self.shell.user_ns if use_ns else None,
            overrides=overrides,
            backend_name=self.session.backend_name,
            models=self.session.models,
            endpoints=self.session.endpoints,
            line_offset=offset,
            fill_prt_config=bool(getattr(self.session._backend, "fill_prt_config", False)),
        )
        entity = parsed.entity
        self.session.remember(entity)
        source = CellSource(kind, parsed.text, base_dir, overrides)
        self.session.sources[source_key(kind, entity)] = source
        endpoint = self.session.endpoints.get(getattr(entity, "endpoint_name", None) or "")
        return parsed, EntitySummary(entity, parsed.warnings, endpoint=endpoint)

    def _finish(
        self,
        args: Any,
        entity: Any,
        summary: Any,
        action: Callable[[], str] | None,
        *,
        panel: bool = False,
    ) -> Any:
        """Store, show and act. With VAR the summary is displayed and None returned; without,
        the summary is the cell's result (so ``_`` works) and the panel follows it."""
        from IPython.display import display

        show_panel = (lambda: self.show_deployment_panel(entity)) if panel else None
        if args.var:
            self.push(args.var, entity)
            display(summary)
            if show_panel:
                show_panel()
            if action is not None:
                print(action())
            return None
        if action is not None:
            summary.note = action()
        if show_panel:
            self._after_result(show_panel)
        return summary

    def _after_result(self, func: Callable[[], None]) -> None:
        """Run ``func`` after the cell's result is displayed (now, outside ``run_cell``)."""
        if getattr(self.shell.displayhook, "exec_result", None) is None:
            func()
            return

        def once(*_: Any) -> None:
            self.shell.events.unregister("post_run_cell", once)
            func()

        self.shell.events.register("post_run_cell", once)


def _overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """``--set a.b=1`` → ``[("a.b", 1)]``; values are YAML scalars (numbers, true, strings)."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PfError(f"--set {pair}: expected KEY=VALUE", hint="e.g. --set instance_count=2")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        out.append((key.strip(), parsed))
    return out


def _created_note(kind: str, name: str, result: Any) -> str:
    state = getattr(result, "provisioning_state", None)
    uri = getattr(result, "scoring_uri", None)
    return (
        f"{kind} {name} created"
        + (f": {state}" if state else "")
        + (f", scoring URI {uri}" if uri else "")
    )


MAGICS = CellsMagics
