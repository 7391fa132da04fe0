"""The text of ``deploy.sh`` (the seed's ``az ml`` sequence), the CI workflow and the README."""

from __future__ import annotations

import shlex
from typing import Any

_Q = shlex.quote


def _split(weights: dict[str, int]) -> str:
    return " ".join(f"{name}={int(pct)}" for name, pct in weights.items())


def deploy_sh(manifest: dict[str, Any]) -> str:
    """Idempotent: creates what is missing, updates what exists, then sets the traffic split."""
    lines = [
        "#!/usr/bin/env bash",
        "# Deploy what the notebook defined, with the az ml CLI (written by pfmagic %pf_export).",
        "# Needs: az login (or azure/login in CI) and `az extension add -n ml`.",
        "set -euo pipefail",
        "",
        'RESOURCE_GROUP="${RESOURCE_GROUP:?set RESOURCE_GROUP to your resource group}"',
        'WORKSPACE_NAME="${WORKSPACE_NAME:?set WORKSPACE_NAME to your Azure ML workspace}"',
        'AZ=(--resource-group "$RESOURCE_GROUP" --workspace-name "$WORKSPACE_NAME")',
        'cd "$(dirname "${BASH_SOURCE[0]}")"',
        "",
        'exists() { az ml "$@" "${AZ[@]}" --output none >/dev/null 2>&1; }',
        "",
    ]
    for var in manifest.get("secrets", []):
        lines.append(f': "${{{var}:?set {var} (a secret: a CI secret or an exported variable)}}"')
    if manifest.get("secrets"):
        lines.append("")
    if manifest["connections"]:
        lines.append("# Connections: create them in the workspace (studio, or `az ml connection")
        lines.append("# create`); the flow's deployment reads them through PRT_CONFIG_OVERRIDE.")
        for conn in manifest["connections"]:
            lines.append(f"#   {conn['name']}: see {conn['file']}")
        lines.append("")
    for model in manifest["models"]:
        lines.append(f'az ml model create --file {_Q(model["file"])} "${{AZ[@]}}"')
    if manifest["models"]:
        lines.append("")
    for ep in manifest["endpoints"]:
        name = _Q(ep["name"])
        lines += [
            f"if exists online-endpoint show --name {name}; then verb=update; else verb=create; fi",
            f'az ml online-endpoint "$verb" --file {_Q(ep["file"])} "${{AZ[@]}}"',
        ]
        for dep in ep["deployments"]:
            sets = "".join(f' --set "{s["field"]}=${{{s["var"]}}}"' for s in dep.get("secrets", []))
            lines += [
                f"if exists online-deployment show --name {_Q(dep['name'])} --endpoint-name "
                f"{name}; then verb=update; else verb=create; fi",
                f'az ml online-deployment "$verb" --file {_Q(dep["file"])}{sets} "${{AZ[@]}}"',
            ]
        if ep["traffic"]:
            lines.append(
                f"az ml online-endpoint update --name {name} "
                f'--traffic {_Q(_split(ep["traffic"]))} "${{AZ[@]}}"'
            )
        if ep["mirror_traffic"]:
            lines.append(
                f"az ml online-endpoint update --name {name} "
                f'--mirror-traffic {_Q(_split(ep["mirror_traffic"]))} "${{AZ[@]}}"'
            )
        lines += [f'az ml online-endpoint show --name {name} "${{AZ[@]}}" --output table', ""]
    return "\n".join(lines).rstrip() + "\n"


def workflow(endpoint: dict[str, Any], manifest: dict[str, Any]) -> str:
    """GitHub Actions: OIDC login with azure/login (no stored password), ml extension, deploy.sh.

    Only names of secrets appear; their values live in the repository's settings."""
    env = {
        "RESOURCE_GROUP": "${{ vars.AZURE_RESOURCE_GROUP }}",
        "WORKSPACE_NAME": "${{ vars.AZURE_ML_WORKSPACE }}",
    }
    for var in manifest.get("secrets", []):
        env[var] = f"${{{{ secrets.{var} }}}}"
    env_lines = "\n".join(f"      {k}: {v}" for k, v in env.items())
    return f"""# Deploy {endpoint["name"]} with az ml (written by pfmagic %pf_export).
# Repository settings: secrets AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID (a federated
# credential for this repository), variables AZURE_RESOURCE_GROUP and AZURE_ML_WORKSPACE.
name: deploy-{endpoint["name"]}

on:
  workflow_dispatch:
  push:
    branches: [main]
    paths:
      - "**"

permissions:
  id-token: write
  contents: read

concurrency:
  group: deploy-{endpoint["name"]}
  cancel-in-progress: false

jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
{env_lines}
    defaults:
      run:
        shell: bash
    steps:
      - uses: actions/checkout@v4
      - uses: azure/login@v2
        with:
          client-id: ${{{{ secrets.AZURE_CLIENT_ID }}}}
          tenant-id: ${{{{ secrets.AZURE_TENANT_ID }}}}
          subscription-id: ${{{{ secrets.AZURE_SUBSCRIPTION_ID }}}}
      - name: Install the Azure ML CLI extension
        run: az extension add --name ml --upgrade --yes
      - name: Deploy
        run: bash ./deploy.sh
"""


def readme(manifest: dict[str, Any]) -> str:
    lines = [
        "# Exported by pfmagic `%pf_export`",
        "",
        "The YAML here is what the notebook's cells held, with `{{var}}` values filled in and",
        "`--set` applied. Deploy with `bash deploy.sh` (needs `az login` and the `ml` extension),",
        "or in CI with the workflow under `.github/workflows/` (move it to the repository's",
        "root `.github/` if this folder is not the root). Back into a notebook:",
        "`%pf_apply <this folder>`.",
        "",
        "## Files",
    ]
    for conn in manifest["connections"]:
        lines.append(f"- `{conn['file']}`: connection {conn['name']}")
    for model in manifest["models"]:
        lines.append(f"- `{model['file']}`: model {model['name']}")
    for ep in manifest["endpoints"]:
        lines.append(f"- `{ep['file']}`: endpoint {ep['name']}")
        for dep in ep["deployments"]:
            lines.append(f"- `{dep['file']}`: deployment {dep['name']} of {ep['name']}")
        split = _split(ep["traffic"]) or "none"
        mirror = f", mirror {_split(ep['mirror_traffic'])}" if ep["mirror_traffic"] else ""
        lines.append(f"  - traffic {split}{mirror} (from {ep['traffic_from']})")
    if manifest["copied"]:
        lines += ["", "Local folders were copied in (the export works from a clean checkout):"]
        lines += [f"- `{dst}` from `{src}`" for dst, src in manifest["copied"].items()]
    lines += [
        "",
        "## To fill in",
        "- `RESOURCE_GROUP` and `WORKSPACE_NAME` (environment variables for `deploy.sh`; in CI the",
        "  repository variables `AZURE_RESOURCE_GROUP` and `AZURE_ML_WORKSPACE`).",
        "- CI login: secrets `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_SUBSCRIPTION_ID` of an",
        "  identity with a federated credential for this repository (OIDC; no password stored).",
    ]
    if manifest["secrets"]:
        lines.append(
            "- Secrets, never written here: "
            + ", ".join(f"`{s}`" for s in manifest["secrets"])
            + " (environment variables locally, repository secrets in CI)."
        )
    if manifest["connections"]:
        lines.append(
            "- Connections must exist in the workspace before the deployments start (studio or "
            "`az ml connection create`); `connection-*.yml` are promptflow connection files."
        )
    return "\n".join(lines) + "\n"
