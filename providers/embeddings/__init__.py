"""Embedding adapters: one module per wire format, each with an `EmbedderSpec`.

A deployment can embed when its kind has an entry in `EMBEDDERS` (`providers.registry` builds
the embedder next to the deployment's `Provider`, over the same HTTP session and key pool).
"""
