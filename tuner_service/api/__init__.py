"""The REST API (FastAPI). Build it with :func:`tuner_service.api.app.create_app`."""
