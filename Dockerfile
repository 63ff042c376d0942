FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client espeak-ng && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home app && mkdir -p /app/var/prometheus && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["python", "-m", "controlplane.web_server", "-b", "0.0.0.0", "-p", "8000", "server.asgi:application"]
