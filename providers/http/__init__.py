"""HTTP for provider adapters: the pooled client, the JSON endpoint, the deployment base
(`HttpDeployment`, shared by chat and embeddings) and the chat adapter base class."""
