"""Deployment environments on the local backend: what a deployment declares, built with uv.

``resolve.py``  the deployment's build context (Dockerfile), ``conda_file`` and the flow's
                ``requirements.txt`` -> one requirement list, each with the file:line it came
                from, plus warnings for what is not reproduced locally.
``build.py``    a uv venv per distinct requirement list (hash) under ``<home>/envs``, layered on
                pfmagic's own environment (promptflow is not reinstalled; the deployment's
                packages come first on ``sys.path``); build log, offline mode, listing, prune.
``scoring.py``  a scoring script's ``conda_file`` -> a standalone venv with
                azureml-inference-server-http (same cache, built in the kernel).
``uv.py``       what both share: the cache folder, per-key locks, running uv, finding a python.
``check.py``    ``--check-env``: resolve + build before a create (Azure too).

Kernel side resolves (azure-ai-ml entities live there); the endpoint's router builds, as
the first stage of a rollout, so a killed router or a pruned env rebuilds on its own.
"""
