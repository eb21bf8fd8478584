"""HTTP transport: thin FastAPI adapters over the inference service."""
