# The CPU image: API, CLI, dashboard and CPU workers (tensorflow-cpu).
# Build with --build-arg EXTRAS= for the control plane alone (API, CLI, dashboard: no TensorFlow).
FROM python:3.11-slim

ARG EXTRAS=cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TUNER_DATA_ROOT=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY search_spaces ./search_spaces
COPY tuner_service ./tuner_service
COPY workers ./workers
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --create-home --uid 1000 tuner \
    && mkdir -p /data && chown tuner /data

USER tuner
EXPOSE 8000 8080
CMD ["tuner-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
