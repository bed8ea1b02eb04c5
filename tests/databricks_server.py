"""A small local Databricks workspace for the tests: the REST endpoints our DAG calls, over real HTTP.

Endpoints (request shapes as documented for the Databricks REST API; anything else is refused the way
Databricks refuses it, with ``{"error_code", "message"}`` and HTTP 400/401/404):

- ``POST /api/2.0/workspace/mkdirs`` ``{"path"}``: creates the folder and its parents.
- ``POST /api/2.0/workspace/import`` ``{"path", "content" (base64), "format", "language", "overwrite"}``:
  a workspace file; the parent folder must exist (``RESOURCE_DOES_NOT_EXIST``), an existing path needs
  ``overwrite`` (``RESOURCE_ALREADY_EXISTS``), ``format: SOURCE`` needs ``language``.
- ``POST /api/2.2/jobs/runs/submit``: a one-time run of ``tasks`` (the 2.1+ multi-task shape; the
  old single-task fields at the top level are refused), each with a ``task_key``, exactly one task
  type and one kind of compute; ``idempotency_token`` (at most 64 characters) returns the existing run.
- ``GET /api/2.2/jobs/runs/get?run_id=``: the run, its ``state`` and its ``tasks`` (each with its own
  task ``run_id``), ``run_page_url``.
- ``GET /api/2.2/jobs/runs/get-output?run_id=<task run id>``: ``error``/``error_trace`` of a failed
  task (a multi-task parent run id is refused, as on Databricks).
- ``POST /api/2.2/jobs/runs/cancel`` ``{"run_id"}``: stops the task's process; the run ends CANCELED.

A run walks PENDING -> RUNNING -> TERMINATED (SUCCESS or FAILED; or CANCELED). Its
``spark_python_task`` really runs: the workspace file is executed with this environment's local
``spark-submit`` (``local[2]``), with the task's ``parameters``; a non-zero exit fails the run with the
tail of its output as the task's error. ``fail_next_run`` makes the next run fail on the "cluster"
without running anything (a remote failure such as a lost cluster). One run executes at a time.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.servers import free_port

SUBMIT_FIELDS = {
    "access_control_list", "budget_policy_id", "email_notifications", "environments", "git_source", "health",
    "idempotency_token", "notification_settings", "queue", "run_as", "run_name", "tasks", "timeout_seconds",
    "usage_policy_id", "webhook_notifications", "performance_target",
}
TASK_TYPES = {
    "notebook_task", "spark_jar_task", "spark_python_task", "spark_submit_task", "pipeline_task", "python_wheel_task",
    "sql_task", "dbt_task", "run_job_task", "condition_task", "for_each_task", "clean_rooms_notebook_task",
    "dashboard_task", "power_bi_task", "gen_ai_compute_task",
}
COMPUTE_FIELDS = {"existing_cluster_id", "new_cluster", "job_cluster_key", "environment_key"}
TASK_FIELDS = TASK_TYPES | COMPUTE_FIELDS | {
    "task_key", "depends_on", "run_if", "libraries", "timeout_seconds", "email_notifications",
    "notification_settings", "webhook_notifications", "health", "description", "disable_auto_optimization",
}
IMPORT_FORMATS = {"AUTO", "SOURCE", "HTML", "JUPYTER", "DBC", "R_MARKDOWN", "RAW"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


class FakeDatabricks:
    """The workspace: files, runs, and the HTTP server on a free port of 127.0.0.1."""

    def __init__(self, workdir: Path, token: str = "dapi-test-token", spark_conf: dict | None = None):
        self.workdir = Path(workdir)
        self.files_root = self.workdir / "workspace"
        self.files_root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.port = free_port()
        self.spark_conf = {"spark.driver.memory": "2g", "spark.ui.showConsoleProgress": "false", **(spark_conf or {})}
        self.requests: list[dict] = []  # every request: method, path, body/query, status
        self.runs: dict[int, dict] = {}
        self.fail_next_run: str | None = None
        self.pending_s = 1.0
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._run_lock = threading.Lock()  # one Spark run at a time
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "FakeDatabricks":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self, method: str):
                url = urlparse(self.path)
                record = {"method": method, "path": url.path}
                try:
                    if self.headers.get("Authorization") != f"Bearer {fake.token}":
                        raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
                    length = int(self.headers.get("Content-Length") or 0)
                    raw = self.rfile.read(length) if length else b""
                    try:
                        body = json.loads(raw or b"{}")
                    except json.JSONDecodeError:
                        raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request")
                    if not isinstance(body, dict):
                        raise ApiError(400, "MALFORMED_REQUEST", "the body must be a JSON object")
                    if method == "GET":
                        # GET takes query parameters; Databricks also reads a JSON body on GET (the
                        # provider's async hook sends one).
                        body = {**body, **{k: v[-1] for k, v in parse_qs(url.query).items()}}
                    record["body"] = body
                    result = fake.dispatch(method, url.path, body)
                    status, payload = 200, result
                except ApiError as exc:
                    status, payload = exc.status, {"error_code": exc.code, "message": exc.message}
                record["status"] = status
                with fake._lock:
                    fake.requests.append(record)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            procs = [r["proc"] for r in self.runs.values() if r.get("proc") is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeDatabricks":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def connection(self) -> dict:
        """The Airflow ``databricks`` connection: host, port, ``schema`` http (the URL scheme), token."""
        return {"conn_type": "databricks", "host": "127.0.0.1", "port": self.port, "schema": "http", "password": self.token}

    def connection_json(self) -> str:
        return json.dumps(self.connection())

    # --- API -----------------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, body: dict) -> dict:
        routes = {
            ("POST", "/api/2.0/workspace/mkdirs"): self.mkdirs,
            ("POST", "/api/2.0/workspace/import"): self.import_file,
            ("POST", "/api/2.2/jobs/runs/submit"): self.submit,
            ("GET", "/api/2.2/jobs/runs/get"): self.get_run,
            ("GET", "/api/2.2/jobs/runs/get-output"): self.get_output,
            ("POST", "/api/2.2/jobs/runs/cancel"): self.cancel,
        }
        handler = routes.get((method, path))
        if handler is None:
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        return handler(body)

    def local_path(self, workspace_path: str) -> Path:
        if not isinstance(workspace_path, str) or not workspace_path.startswith("/") or ".." in workspace_path.split("/"):
            raise _bad(f"Path ({workspace_path!r}) must be an absolute path")
        return self.files_root / workspace_path.lstrip("/")

    def mkdirs(self, body: dict) -> dict:
        _only(body, {"path"}, "workspace/mkdirs")
        target = self.local_path(body.get("path"))
        if target.is_file():
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({body['path']}) already exists and is a file")
        target.mkdir(parents=True, exist_ok=True)
        return {}

    def import_file(self, body: dict) -> dict:
        _only(body, {"path", "content", "format", "language", "overwrite"}, "workspace/import")
        target = self.local_path(body.get("path"))
        fmt = body.get("format", "SOURCE")
        if fmt not in IMPORT_FORMATS:
            raise _bad(f"Invalid format {fmt!r}; one of {sorted(IMPORT_FORMATS)}")
        if fmt == "SOURCE" and not body.get("language"):
            raise _bad("The language field is required to import a single file in SOURCE format")
        if not isinstance(body.get("overwrite", False), bool):
            raise _bad("overwrite must be a boolean")
        try:
            data = base64.b64decode(body.get("content") or "", validate=True)
        except (binascii.Error, TypeError):
            raise _bad("content must be base64-encoded")
        if len(data) > 10 * 1024 * 1024:
            raise ApiError(400, "MAX_NOTEBOOK_SIZE_EXCEEDED", "File size imported is larger than 10 MB")
        if not target.parent.is_dir():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The parent folder ({target.parent}) does not exist.")
        if target.exists() and not body.get("overwrite", False):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"{body['path']} already exists.")
        target.write_bytes(data)
        return {}

    def submit(self, body: dict) -> dict:
        unknown = set(body) - SUBMIT_FIELDS
        if unknown:
            raise _bad(f"runs/submit: unknown fields {sorted(unknown)} (API 2.2 takes a list of tasks)")
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _bad("runs/submit: 'tasks' must be a non-empty list")
        keys = []
        for task in tasks:
            self._check_task(task)
            keys.append(task["task_key"])
        if len(set(keys)) != len(keys):
            raise _bad("task_key must be unique within a run")
        token = body.get("idempotency_token")
        if token is not None:
            if not isinstance(token, str) or len(token) > 64:
                raise _bad("idempotency_token must be a string of at most 64 characters")
            with self._lock:
                for run in self.runs.values():
                    if run["idempotency_token"] == token:
                        return {"run_id": run["run_id"]}
        # Databricks' JSON parser takes int64 fields as numbers or decimal strings (the provider sends strings).
        timeout = body.get("timeout_seconds", 0)
        if not (isinstance(timeout, int) or (isinstance(timeout, str) and timeout.isdigit())):
            raise _bad("timeout_seconds must be a non-negative integer")
        with self._lock:
            run_id = next(self._ids)
            job_id = next(self._ids)
            run = {
                "run_id": run_id,
                "job_id": job_id,
                "run_name": body.get("run_name", "Untitled"),
                "idempotency_token": token,
                "submitted": body,
                "state": {"life_cycle_state": "PENDING", "state_message": "Waiting for cluster"},
                "states_seen": [],
                "tasks": [
                    {"run_id": next(self._ids), "task_key": t["task_key"], "spec": t,
                     "state": {"life_cycle_state": "PENDING", "state_message": ""}, "error": None, "error_trace": None}
                    for t in tasks
                ],
                "fail_with": self.fail_next_run,
                "proc": None,
                "cancelled": False,
            }
            self.fail_next_run = None
            self.runs[run_id] = run
        threading.Thread(target=self._execute, args=(run,), daemon=True).start()
        return {"run_id": run_id}

    def _check_task(self, task) -> None:
        if not isinstance(task, dict):
            raise _bad("each task must be an object")
        unknown = set(task) - TASK_FIELDS
        if unknown:
            raise _bad(f"task: unknown fields {sorted(unknown)}")
        key = task.get("task_key")
        if not isinstance(key, str) or not key or len(key) > 100 or not all(c.isalnum() or c in "-_" for c in key):
            raise _bad("task_key is required: 1-100 characters, letters, digits, '-' and '_'")
        types = set(task) & TASK_TYPES
        if len(types) != 1:
            raise _bad(f"task {key}: exactly one task type is required, got {sorted(types)}")
        compute = set(task) & COMPUTE_FIELDS
        if len(compute) > 1:
            raise _bad(f"task {key}: at most one of {sorted(COMPUTE_FIELDS)}, got {sorted(compute)}")
        if "new_cluster" in task:
            cluster = task["new_cluster"]
            if not isinstance(cluster, dict) or not cluster.get("spark_version"):
                raise _bad("new_cluster.spark_version is required")
            if not (cluster.get("node_type_id") or cluster.get("instance_pool_id") or cluster.get("policy_id")):
                raise _bad("new_cluster needs node_type_id or instance_pool_id")
            if "num_workers" not in cluster and "autoscale" not in cluster:
                raise _bad("new_cluster needs num_workers or autoscale")
        if "existing_cluster_id" in task and not isinstance(task["existing_cluster_id"], str):
            raise _bad("existing_cluster_id must be a string")
        if "spark_python_task" in task:
            spt = task["spark_python_task"]
            if not isinstance(spt, dict) or set(spt) - {"python_file", "parameters", "source"}:
                raise _bad("spark_python_task takes python_file, parameters and source")
            if not isinstance(spt.get("python_file"), str) or not spt["python_file"]:
                raise _bad("spark_python_task.python_file is required")
            params = spt.get("parameters", [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise _bad("spark_python_task.parameters must be a list of strings")
            source = spt.get("source", "WORKSPACE")
            if source not in ("WORKSPACE", "GIT"):
                raise _bad("spark_python_task.source must be WORKSPACE or GIT")
            if source == "WORKSPACE" and not spt["python_file"].startswith(("/", "dbfs:/", "s3:/", "abfss:/", "gs:/")):
                raise _bad("a WORKSPACE python_file must be an absolute path")
        elif not compute:
            raise _bad(f"task {key}: a cluster is required")

    def _get(self, run_id) -> tuple[dict, dict | None]:
        try:
            run_id = int(run_id)
        except (TypeError, ValueError):
            raise _bad(f"run_id must be an integer, got {run_id!r}")
        with self._lock:
            if run_id in self.runs:
                return self.runs[run_id], None
            for run in self.runs.values():
                for task in run["tasks"]:
                    if task["run_id"] == run_id:
                        return run, task
        raise _bad(f"Run {run_id} does not exist.")

    def run_page_url(self, run: dict) -> str:
        return f"http://127.0.0.1:{self.port}/?o=1234567890#job/{run['job_id']}/run/{run['run_id']}"

    def get_run(self, body: dict) -> dict:
        run, task = self._get(body.get("run_id"))
        if task is not None:
            raise _bad("runs/get takes the run_id of a run, not of one of its tasks")
        with self._lock:
            run["states_seen"].append(run["state"]["life_cycle_state"])
            return {
                "job_id": run["job_id"],
                "run_id": run["run_id"],
                "run_name": run["run_name"],
                "number_in_job": run["run_id"],
                "run_type": "SUBMIT_RUN",
                "run_page_url": self.run_page_url(run),
                "state": dict(run["state"]),
                "status": {"state": run["state"]["life_cycle_state"]},
                "tasks": [
                    {"run_id": t["run_id"], "task_key": t["task_key"], "state": dict(t["state"]),
                     "start_time": run["run_id"], "attempt_number": 0,
                     **{k: t["spec"][k] for k in t["spec"] if k != "task_key"}}
                    for t in run["tasks"]
                ],
            }

    def get_output(self, body: dict) -> dict:
        run, task = self._get(body.get("run_id"))
        if task is None:
            raise _bad(
                "Retrieving the output of runs with multiple tasks is not supported. "
                "Please retrieve the output of each individual task run instead."
            )
        out = {"metadata": {"run_id": task["run_id"], "task_key": task["task_key"], "state": dict(task["state"])}}
        if task["error"]:
            out["error"] = task["error"]
            out["error_trace"] = task["error_trace"]
        return out

    def cancel(self, body: dict) -> dict:
        _only(body, {"run_id"}, "runs/cancel")
        run, task = self._get(body.get("run_id"))
        with self._lock:
            run["cancelled"] = True
            proc = run.get("proc")
        if proc is not None and proc.poll() is None:
            proc.terminate()
        return {}

    # --- execution ---------------------------------------------------------------------------------
    def _set(self, run: dict, life: str, result: str | None = None, message: str = "") -> None:
        with self._lock:
            state = {"life_cycle_state": life, "state_message": message}
            if result:
                state["result_state"] = result
            run["state"] = state
            for task in run["tasks"]:
                task["state"] = dict(state)

    def _execute(self, run: dict) -> None:
        time.sleep(self.pending_s)  # "waiting for the cluster": a poll sees PENDING
        with self._run_lock:
            if run["cancelled"]:
                self._set(run, "TERMINATED", "CANCELED", "Run cancelled.")
                return
            self._set(run, "RUNNING", message="In run")
            task = run["tasks"][0]
            if run["fail_with"]:
                time.sleep(self.pending_s)
                task["error"] = run["fail_with"]
                task["error_trace"] = f"Traceback: {run['fail_with']}"
                self._set(run, "TERMINATED", "FAILED", f"Task {task['task_key']} failed with message: {run['fail_with']}.")
                return
            spt = task["spec"].get("spark_python_task")
            if spt is None:
                self._set(run, "INTERNAL_ERROR", "FAILED", "this fake workspace runs spark_python_task only")
                return
            script = self.local_path(spt["python_file"])
            if not script.is_file():
                task["error"] = f"FileNotFoundError: {spt['python_file']} does not exist in the workspace"
                self._set(run, "INTERNAL_ERROR", "FAILED", task["error"])
                return
            cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]"]
            for key, value in self.spark_conf.items():
                cmd += ["--conf", f"{key}={value}"]
            cmd += [str(script), *spt.get("parameters", [])]
            env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                   "SPARK_LOCAL_IP": "127.0.0.1"}
            log_path = self.workdir / f"run_{run['run_id']}.log"
            run["command"] = cmd
            run["log"] = log_path
            with log_path.open("wb") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
                with self._lock:
                    run["proc"] = proc
                code = proc.wait()
            if run["cancelled"]:
                self._set(run, "TERMINATED", "CANCELED", "Run cancelled.")
            elif code == 0:
                self._set(run, "TERMINATED", "SUCCESS", "")
            else:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
                task["error"] = next((line for line in reversed(tail) if "Error" in line or "Exception" in line), tail[-1] if tail else f"exit {code}")
                task["error_trace"] = "\n".join(tail)
                self._set(run, "TERMINATED", "FAILED", f"Task {task['task_key']} failed with message: {task['error']}.")

    def wait(self, run_id: int, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                state = dict(self.runs[run_id]["state"])
            if state["life_cycle_state"] in ("TERMINATED", "INTERNAL_ERROR", "SKIPPED"):
                return state
            time.sleep(0.2)
        raise TimeoutError(f"run {run_id} still {state} after {timeout} s")


def _only(body: dict, allowed: set[str], endpoint: str) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise _bad(f"{endpoint}: unknown fields {sorted(unknown)}")
