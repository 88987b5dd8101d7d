"""HTTP for provider adapters: the pooled client, the JSON endpoint and the adapter base class."""
