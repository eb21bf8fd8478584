"""HTTP transport: thin FastAPI adapters over the inference service (create_app in app.py)."""
