"""Azure ML backend (azure-ai-ml ``MLClient`` + azure-identity); see ``backend.AzureBackend``.

Kept empty on purpose: importing azure.ai.ml costs seconds, so nothing here imports it.
"""
