"""``%pf_envs``: the local backend's built deployment environments (``pfmagic.environments``)."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pfmagic.errors import usage_errors
from pfmagic.magics.base import SessionMagics


@magics_class
class EnvMagics(SessionMagics):
    @magic_arguments()
    @argument("--prune", action="store_true", help="Remove environments no deployment uses.")
    @argument("-o", "--output", metavar="VAR", help="Store the listing in VAR.")
    @line_magic
    @usage_errors
    def pf_envs(self, line: str) -> Any:
        """List the environments built for local deployments (size, last use, packages).

        Examples::

            %pf_envs
            %pf_envs --prune
        """
        from pfmagic.backends.local.state import Home
        from pfmagic.environments import build
        from pfmagic.render.envs import EnvList

        args = parse_argstring(self.pf_envs, line)
        home = Home(self.settings.home or None)
        root = build.envs_root(home.root)
        used = build.in_use(home)
        removed = build.prune(root, used) if args.prune else []
        result = EnvList(str(root), build.list_envs(root), used, removed)
        self.push(args.output, result)
        return result


MAGICS = EnvMagics
