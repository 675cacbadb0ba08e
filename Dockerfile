# The ftscope worker image: a CUDA toolkit (DeepSpeed JIT-compiles its kernels with nvcc when a run
# first needs them), the pinned torch's CUDA build, DeepSpeed and ftscope, run as a non-root user.
#   docker build -t ftscope:latest .            (CUDA and the torch wheel index are build arguments)
# Checked for syntax in the tests; no Docker engine runs on the machine ftscope is developed on.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 DS_BUILD_OPS=0 PATH=/opt/venv/bin:$PATH \
    PREFECT_LOGGING_EXTRA_LOGGERS=ftscope DO_NOT_TRACK=1 HF_HUB_DISABLE_PROGRESS_BARS=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
        git ca-certificates && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX}
WORKDIR /opt/ftscope
COPY pyproject.toml README.md ./
COPY ftscope ftscope
COPY flows flows
COPY tasks tasks
COPY configs configs
RUN pip install --no-cache-dir ".[deepspeed]" \
    && useradd --create-home --uid 1000 ftscope \
    && mkdir -p /data/results /data/artifacts /data/cache && chown -R ftscope /data
USER ftscope
ENV HF_HOME=/data/cache/huggingface
ENTRYPOINT ["ftscope"]
CMD ["--help"]
