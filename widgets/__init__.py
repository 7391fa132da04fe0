"""pfmagic.widgets: the quota calculator, the deployment progress view and the Deploy panel.

- ``quota.QuotaCalculator``: SKU picker + instance slider → ``pfmagic.skus.QuotaCheck``
- ``progress.ProgressView``: live view of a ``pfmagic.backends.events.Operation``
- ``deploy.DeploymentPanel`` / ``DeployPanel``: what ``%%pf_deployment`` shows under the cell
- ``text`` / ``track``: the plain-text twins (``TextProgress`` prints one line per event)
- ``run``: what ``SessionMagics.run_operation`` / ``show_deployment_panel`` call

Only ``quota``, ``progress`` and ``deploy`` import ipywidgets; nothing is imported here.
"""
