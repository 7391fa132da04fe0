"""Local backend: real HTTP endpoints on 127.0.0.1 with Azure's managed online endpoint contract.

Processes
---------
kernel (``backend.LocalBackend``)
    Writes state, starts an endpoint's router when it is not running (``control.py``), asks it
    to reconcile over its admin API and turns its status into ``ProgressEvent``s. Never imports
    promptflow; imports azure.ai.ml only to build the entities it returns.
router, one per endpoint (``python -m pfmagic.backends.local.server --home H --endpoint E``)
    Started detached (own session), so endpoints outlive a kernel restart; a killed router is
    started again on the next use, on the same port with the same keys; it holds
    ``.router.running.lock`` (flock) for life, so there is never a second one, not even next
    to a stopped (SIGSTOP) one. The only TCP listener; every request passes ``guard.py``
    (Host allow-list, Origin, CORS only for configured origins, nosniff / X-Frame-Options);
    bounded by ``limits.py`` (request-head deadline, keep-alive, connection limit with 503,
    open-file limit, log rotation, rate-limited errors). The kernel's clients check every new
    connection with an HMAC challenge over the admin secret (``identity.py``) before sending
    a key, a question or the admin token. ``%pf_stop`` / ``%pf_start`` stop and start it
    (``stopped`` in endpoint.json). Starlette under
    uvicorn: ``POST /score`` (auth, body size limit, traffic, mirror, targeted header,
    streaming pass-through, ``azureml-model-deployment`` reply header, fail-over to another
    instance when one drops a request before replying, 401/404/408/413/424/429/502/503 JSON
    errors), ``GET /swagger.json``, ``GET /health``, ``GET /_pfmagic/identity`` (the proof),
    and the admin API ``/_pfmagic/{status,reconcile,shutdown}`` guarded by the
    ``X-Pfmagic-Admin`` token; any other path is 404. Supervises the instances
    (``supervisor.py``): rollouts, probes, restarts, drains. Imports only what it serves with
    (``tests/test_router_imports.py``): uvicorn without its CLI (``uvicorn_core.py``), no
    httpx, promptflow, azure, psutil (``proc_stats.py``) or prometheus_client until a scrape
    (``prometheus_export.py``); freed C heap goes back to the kernel (``heap.py``).
zygote, one per router (``zygote.py``)
    Imports promptflow's serving stack once and forks instances on request, so an instance is
    ready in ~0.3-1.5 s and shares the imported code with its siblings. Exits with its router.
    ``PFMAGIC_NO_ZYGOTE`` (router environment, or a deployment's environment_variables) falls
    back to plain interpreters.
executors (``executors/``)
    How an instance process is started, behind the router's contract: ``promptflow`` (below)
    or ``scoring`` -- a ``code_configuration`` script under azureml-inference-server-http in
    the deployment's own uv-built environment (``AZUREML_MODEL_DIR`` = the model's copy).
instance, ``instance_count`` per deployment (``instance.py``)
    promptflow's ``create_app(engine="fastapi", extension_type="azureml")`` under uvicorn on
    its own UNIX socket in ``sock/<ep>/`` (0700 folder, 0600 socket: only the user, in
    practice only the router, can connect), with the deployment's environment variables, the stored
    connections its flow refers to (``connections.used_by``) encoded in
    ``PROMPTFLOW_ENCODED_CONNECTIONS`` (no keyring) and ``PF_HOME_DIRECTORY`` under the pfmagic
    home (telemetry off; ``quiet.py`` keeps promptflow from even building its telemetry
    exporter). Exits when its router dies; survives its zygote's death (the router is its
    child subreaper and adopts it; a dead zygote is restarted in the background).

State (``PFMAGIC_HOME``, default ``~/.pfmagic``; root 0700, every JSON file 0600 and written
atomically: temp file, fsync, ``os.replace``)
-----
::

    models/<name>/<version>/flow/          copied flow (additional_includes staged by promptflow's
    models/<name>/<version>/model.json     build in a subprocess); hash, source, tags
    endpoints/<ep>/endpoint.json           auth_mode, keys, token signing key, admin token, port,
                                           traffic, mirror_traffic         (written by the kernel);
                                           optional max_request_bytes (request body limit,
                                           default 1.5 MiB or $PFMAGIC_MAX_REQUEST_BYTES),
                                           allowed_hosts / allowed_origins (PfMagics),
                                           header_timeout (10 s), max_connections (256),
                                           stopped (%pf_stop)
    endpoints/<ep>/run.json                router pid and port             (written by the router)
    endpoints/<ep>/deployments/<dep>/deployment.json   entity dict + runtime spec + generation
    endpoints/<ep>/deployments/<dep>/g<gen>/<flow>/    working copy served by that generation
    endpoints/<ep>/.router.running.lock    held by the live router (one router per endpoint)
    sock/<ep>/<random>.sock                instance sockets
    logs/<ep>/router.log                   router and zygote output (logs of a deleted
                                           endpoint stay until ``%pf_delete ... --purge``;
                                           each rotates at 20 MiB to ``<name>.1``)
    logs/<ep>/<dep>/inference-server.log   every instance's output + ``[pfmagic]`` supervisor lines
    logs/<ep>/<dep>/storage-initializer.log  which model version was copied from where
    code/<hash>/                           a scoring script's code folder, by content
    envs/<hash>/                           scoring-script environments ($PFMAGIC_ENVS_DIR)
    connections.json                       stored connections (``${env:VAR}`` kept unresolved)
    promptflow/                            PF_HOME_DIRECTORY of the children (telemetry off)

Provisioning: each ``create_deployment`` bumps the deployment's generation; the router rolls
it out (Creating/Updating -> Succeeded/Failed, old instances keep serving until the new ones
pass readiness, then drain). Re-running an unchanged deployment is a no-op.
"""
