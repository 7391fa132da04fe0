"""``%pf_export DIR`` and its inverse ``%pf_apply DIR``: from a notebook to a repo that deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pfmagic.errors import usage_errors
from pfmagic.magics.base import SessionMagics


@magics_class
class ExportMagics(SessionMagics):
    @line_magic
    @magic_arguments(name="%pf_export")
    @argument("dir", metavar="DIR", help="Folder to write (relative to the notebook).")
    @argument("--endpoint", metavar="EP", help="Only this endpoint and the models it uses.")
    @argument("--force", action="store_true", help="Write into a folder that is not empty.")
    @usage_errors
    def pf_export(self, line: str) -> Any:
        """Write what the session defines as ``az ml`` YAML, ``deploy.sh`` and a CI workflow.

        One YAML per model, endpoint, deployment and connection: the cells' own YAML (comments
        kept) with ``{{var}}`` filled in, ``--set`` applied, ``$schema`` lines, and local folders
        (flows, build contexts, code) copied into DIR. ``deploy.sh`` runs the seed's ``az ml``
        sequence and sets the live traffic split; ``.github/workflows/deploy-<endpoint>.yml``
        logs in with OIDC and runs it. Secrets are never written: they become ``${env:NAME}``
        references, listed in DIR/README.md. ``%pf_apply DIR`` recreates the export.

        Examples::

            %pf_export deploy/
            %pf_export deploy/ --endpoint basic-chat-endpoint --force
        """
        from pfmagic.export.plan import make_plan
        from pfmagic.export.write import write_export

        args = parse_argstring(self.pf_export, line)
        plan = make_plan(self.session, args.endpoint)
        return write_export(plan, self._path(args.dir), force=args.force)

    @line_magic
    @magic_arguments(name="%pf_apply")
    @argument("dir", metavar="DIR", help="A folder written by %%pf_export.")
    @usage_errors
    def pf_apply(self, line: str) -> None:
        """Recreate an export on the active backend: connections, models, endpoints,
        deployments, traffic (the inverse of ``%pf_export``). Secrets come from environment
        variables named in DIR/README.md.

        Example::

            %pf_apply deploy/
        """
        from pfmagic.export.apply import apply_export

        args = parse_argstring(self.pf_apply, line)
        apply_export(self.session, self._path(args.dir), lambda op: self.run_operation(op))

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.notebook_dir() / path


MAGICS = ExportMagics
