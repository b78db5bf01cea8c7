"""HTTP API over the marts: FastAPI + psycopg 3, served by uvicorn (`python -m api`)."""
