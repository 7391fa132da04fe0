"""From a notebook that works to a repo that deploys (``%pf_export``) and back (``%pf_apply``).

- ``source``: what each entity was parsed from (kept by the YAML cells in ``Session.sources``);
- ``yamlfile``: one exported YAML: the cell's text with comments, ``--set`` applied, ``$schema``,
  local paths copied into the export and rewritten, secret values turned into ``${env:NAME}``;
- ``plan``: what a session defines, in deploy order, with the live traffic split;
- ``scripts``: ``deploy.sh`` (the seed's ``az ml`` sequence), the GitHub Actions workflow, README;
- ``write``: lays out the export folder; ``apply``: recreates an export on the active backend.

Nothing here imports azure.ai.ml at module level (``%load_ext`` stays light).
"""
