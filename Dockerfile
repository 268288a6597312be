# The serving image: one export (the ensemble, or a student) and only what runs it (no torch).
#
#   python -m pipelines export titanic            # writes data/export/titanic/
#   docker build --build-arg NAME=titanic -t kaggle-pipelines-titanic .
#   docker run --rm -p 8000:8000 kaggle-pipelines-titanic
#
# The versions follow pyproject.toml's bounds; the package itself goes in without its
# training dependencies (--no-deps): `serve` imports none of them (torch, DVC, Optuna, ...); the
# libraries an ensemble's members need come from its requirements.txt, below.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE PIP_NO_CACHE_DIR=1
RUN pip install "numpy>=1.26" "pandas>=2.2" "pyarrow>=15" "scikit-learn>=1.5,<1.11" "onnxruntime>=1.18" \
        "pillow" "pydantic>=2.6" "pyyaml>=6" "tqdm>=4.66" "fastapi>=0.110" "uvicorn>=0.29" \
        "fastapi-offline>=1.7"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipelines ./pipelines
RUN pip install --no-deps . && useradd --system --no-create-home serve

ARG NAME
ENV NAME=${NAME}
COPY data/export/${NAME} /app/model
# an ensemble export pins what its members need beyond the above (LightGBM, XGBoost, CatBoost,
# tokenizers, the scikit-learn version its states were written with); a student needs nothing more
RUN if [ -f /app/model/requirements.txt ]; then pip install -r /app/model/requirements.txt; fi

USER serve
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
# exec: uvicorn gets SIGTERM from `docker stop` and shuts down cleanly
CMD ["sh", "-c", "exec python -m pipelines serve \"$NAME\" --model /app/model --host 0.0.0.0 --port 8000"]
