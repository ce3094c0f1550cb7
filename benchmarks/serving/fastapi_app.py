"""The guide's plain FastAPI model service (section 5), as a user would write it.

Served by uvicorn from its own virtualenv; ``BENCH_MODEL`` names the joblib file.
"""

from __future__ import annotations

import os
import time
import warnings

import joblib
import numpy as np
from fastapi import FastAPI, HTTPException
from prometheus_client import Counter, Histogram
from pydantic import BaseModel

warnings.filterwarnings("ignore")
model = joblib.load(os.environ["BENCH_MODEL"])
MODEL_INPUT_SIZE = 20

app = FastAPI(title="ML Model Service")


class PredictionRequest(BaseModel):
    features: list[float]
    metadata: dict[str, str] = {}


class PredictionResponse(BaseModel):
    prediction: float
    confidence: float
    processing_time: float


PREDICTION_REQUEST_COUNT = Counter("prediction_requests_total", "Total prediction requests")
PREDICTION_LATENCY = Histogram("prediction_latency_seconds", "Prediction latency in seconds")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict", response_model=PredictionResponse)
async def predict(request: PredictionRequest) -> PredictionResponse:
    start_time = time.time()
    PREDICTION_REQUEST_COUNT.inc()
    features = np.array([request.features])
    if features.shape[1] != MODEL_INPUT_SIZE:
        raise HTTPException(
            status_code=400,
            detail=f"Expected {MODEL_INPUT_SIZE} features, got {features.shape[1]}",
        )
    with PREDICTION_LATENCY.time():
        probabilities = model.predict_proba(features)[0]
    return PredictionResponse(
        prediction=float(probabilities.argmax()),
        confidence=float(probabilities.max()),
        processing_time=time.time() - start_time,
    )
