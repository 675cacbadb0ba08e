# The worker image: a CUDA toolkit (DeepSpeed JIT-compiles its kernels with nvcc when a run first needs
# them), the pinned torch's CUDA build, vLLM, DeepSpeed and ftscope, run as a non-root user (UID 1000).
#   docker build -t ftscope:latest .            (CUDA and the torch wheel index are build arguments)
# No ENTRYPOINT: a Prefect worker starts a flow run by giving the container its command
# (`prefect flow-run execute`, as Kubernetes `args`), which must run as given; CMD is only the default.
# JIT builds and model downloads go to the shared volume (/shared/cache), so pods do not rebuild them.
# Checked in the tests (tests/test_infra.py); no Docker engine runs on the machine ftscope is developed on.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 DS_BUILD_OPS=0 PATH=/opt/venv/bin:$PATH \
    PREFECT_LOGGING_EXTRA_LOGGERS=ftscope DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
    HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HOME=/shared/cache/huggingface \
    TORCH_EXTENSIONS_DIR=/shared/cache/torch_extensions TRITON_CACHE_DIR=/shared/cache/triton
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
RUN pip install --no-cache-dir ".[deepspeed,vllm]" && pip install --no-cache-dir --no-deps vllm==0.32.0 \
    && (userdel --remove ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid 1000 --user-group ftscope \
    && mkdir -p /shared && chown ftscope:ftscope /shared
USER ftscope
CMD ["ftscope", "--help"]
