"""Cell text → azure-ai-ml entities (``load``), prompt-flow checks (``checks``), connections.

Nothing here is imported at ``%load_ext``; ``load.warm_up()`` imports azure.ai.ml in the
background. See ``pfmagic.spec.load`` for the Python API (``parse_model`` / ``parse_endpoint`` /
``parse_deployment``) and ``pfmagic.spec.connection.parse_connection``.
"""
