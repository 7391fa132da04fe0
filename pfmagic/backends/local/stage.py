"""Resolve a flow's ``additional_includes`` in a subprocess (never inside the kernel).

``python -m pfmagic.backends.local.stage SRC OUT`` runs promptflow's own
``flows.build(format="docker", flow_only=True)``, which copies the includes into the flow
folder and drops the key (promptflow 1.18.5's serve path is broken for them: promptflow.md §6).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    src, out = (argv if argv is not None else sys.argv[1:])[:2]
    from promptflow.client import PFClient

    PFClient().flows.build(flow=src, output=out, format="docker", flow_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
