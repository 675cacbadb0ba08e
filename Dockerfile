# ftscope worker image: the core library, the flows and tasks, DeepSpeed for multi-GPU cells.
# On a CUDA host, torch==2.13.0 resolves to that version's CUDA build.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 DS_BUILD_OPS=0 PREFECT_LOGGING_EXTRA_LOGGERS=ftscope
RUN apt-get update && apt-get install -y --no-install-recommends build-essential git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ftscope
COPY pyproject.toml README.md ./
COPY ftscope ftscope
COPY flows flows
COPY tasks tasks
COPY configs configs
COPY infra infra
RUN pip install --no-cache-dir -e ".[deepspeed]"
ENTRYPOINT ["ftscope"]
CMD ["--help"]
