"""``%pf_quota``: the cores a managed deployment needs, against the workspace's quota."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pfmagic.errors import NotFound, PfError, usage_errors
from pfmagic.magics.base import SessionMagics
from pfmagic.skus import close_skus, deployment_choice, sku_info


@magics_class
class QuotaMagics(SessionMagics):
    @magic_arguments()
    @argument(
        "deployment",
        nargs="?",
        default=None,
        help="a parsed deployment: NAME or ENDPOINT/NAME (default: a free calculator)",
    )
    @argument("--sku", "-s", default=None, help="VM SKU, e.g. Standard_F4s_v2 or F4s_v2")
    @argument("--instances", "-n", type=int, default=None, help="instance count")
    @argument(
        "--apply",
        action="store_true",
        help="write --sku/--instances into the parsed deployment of this session",
    )
    @argument(
        "-o",
        "--output",
        default=None,
        metavar="VAR",
        help="store the result (widget, or QuotaCheck in text mode) in VAR",
    )
    @line_magic
    @usage_errors
    def pf_quota(self, line: str) -> Any:
        """Quota calculator: vCPUs = ceil(1.2 × instances) × cores of the SKU (some GPU SKUs
        skip the 20 % reservation), the family's usage and limit on Azure, and a verdict.

        Examples::

            %pf_quota                              # pick a SKU and a count
            %pf_quota blue                         # the parsed deployment 'blue'
            %pf_quota my-endpoint/blue --sku F4s_v2 --instances 3 --apply
        """
        args = parse_argstring(self.pf_quota, line)
        if args.instances is not None and args.instances < 1:
            raise PfError("--instances must be at least 1")
        if args.sku and sku_info(args.sku) is None:
            near = close_skus(args.sku)
            raise PfError(
                f"'{args.sku}' is not a managed online endpoint SKU",
                hint=f"did you mean {', '.join(near)}?" if near else "see %pf_quota for the list",
            )
        deployment = self._find(args.deployment) if args.deployment else None
        if args.apply:
            if deployment is None:
                raise PfError("--apply needs a DEPLOYMENT to write into")
            if args.sku:
                deployment.instance_type = sku_info(args.sku).name  # type: ignore[union-attr]
            if args.instances:
                deployment.instance_count = args.instances
        result = self._show(deployment, args.sku, args.instances)
        if args.output:
            self.push(args.output, result)
            return None
        return result

    def _show(self, deployment: Any, sku: str | None, instances: int | None) -> Any:
        from pfmagic.widgets.run import read_usage

        backend_name = self.session.backend_name
        if self.use_widgets():
            from pfmagic.widgets.quota import QuotaCalculator

            loader = None if backend_name == "local" else (lambda: read_usage(self.session))
            return QuotaCalculator(
                deployment, usage=loader, backend_name=backend_name, sku=sku, instances=instances
            )
        from pfmagic.skus import DEFAULT_SKU, check_quota

        dep_sku, dep_count, kubernetes = (
            deployment_choice(deployment) if deployment is not None else (DEFAULT_SKU, 1, False)
        )
        try:
            usage, error = read_usage(self.session), None
        except Exception as exc:  # show the arithmetic even if the workspace call fails
            usage, error = None, f"could not read workspace quota: {exc}"
        check = check_quota(
            sku or dep_sku,
            instances or dep_count,
            usage,
            backend_name=backend_name,
            kubernetes=kubernetes,
        )
        if error:
            check.message = f"{error}; {check.message}"
        name = getattr(deployment, "name", None)
        check.title = f"Quota for {name}" if name else None
        return check  # its repr is the text block (Out[n] / print)

    def _find(self, ref: str) -> Any:
        deployments = self.session.deployments
        if "/" in ref:
            endpoint, name = ref.split("/", 1)
            if (endpoint, name) in deployments:
                return deployments[(endpoint, name)]
            raise NotFound(f"no parsed deployment '{ref}'", hint=self._known())
        hits = [dep for (_ep, name), dep in deployments.items() if name == ref]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise NotFound(f"no parsed deployment '{ref}'", hint=self._known())
        raise PfError(
            f"'{ref}' names deployments of several endpoints",
            hint="use ENDPOINT/NAME: " + self._known(),
        )

    def _known(self) -> str:
        names = [f"{ep}/{name}" for ep, name in self.session.deployments]
        return ("parsed: " + ", ".join(names)) if names else "run a %%pf_deployment cell first"


MAGICS = QuotaMagics
