# Kafscale broker image. Build: docker build -t kafscale .
# Stage 1 compiles the Cython kernels into a wheel; stage 2 is a slim runtime with no compilers.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY kafscale ./kafscale
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/kafscale --create-home kafscale
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && python -c "import kafscale._fast as f; assert f.IMPLEMENTATION == 'cython', f.IMPLEMENTATION"
USER 10001
WORKDIR /var/lib/kafscale
ENV KAFSCALE_LISTEN_HOST=0.0.0.0 \
    KAFSCALE_DATA_DIR=/var/lib/kafscale/data \
    PYTHONUNBUFFERED=1
EXPOSE 9092 9093
ENTRYPOINT ["kafscale", "serve"]
