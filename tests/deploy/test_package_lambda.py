"""scripts/package-lambda.sh: the zip holds the code Lambda runs, and nothing else of ours."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> pathlib.Path:
    output = tmp_path_factory.mktemp("lambda") / "lambda.zip"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "package-lambda.sh"), "--source-only", "--output", str(output)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "lambda_handler.handler" in done.stdout
    return output


def test_the_package_holds_the_handler_the_app_and_every_function(package):
    names = set(zipfile.ZipFile(package).namelist())
    assert {"lambda_handler.py", "app.py", "main.py", "shared/__init__.py", "shared/config.py"} <= names
    # The PostgreSQL backend applies these at first use: they must ship with the code.
    assert "shared/store/migrations/postgres/0001_init.sql" in names
    for entry in ("send", "verify_start", "verify_check", "verify_cancel", "verify_next", "inbound", "status"):
        assert f"functions/{entry}.py" in names


def test_the_package_leaves_out_tests_sandbox_caches_and_state(package):
    names = zipfile.ZipFile(package).namelist()
    assert not [n for n in names if n.split("/")[0] in ("tests", "sandbox", "bench", "scripts", ".venv", ".data")]
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]


def test_the_packaged_handler_runs_from_the_zip_alone(package, tmp_path):
    # A fresh interpreter whose only copy of our code is the zip (the venv provides the
    # dependencies, as the full package or a layer would on Lambda).
    event = {
        "version": "2.0", "rawPath": "/healthz", "rawQueryString": "", "headers": {"host": "x"},
        "requestContext": {"http": {"method": "GET", "path": "/healthz", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
                           "stage": "$default"},
        "isBase64Encoded": False,
    }
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import lambda_handler; assert lambda_handler.__file__.startswith(sys.argv[1]), lambda_handler.__file__;"
        "print(json.dumps(lambda_handler.handler(json.loads(sys.argv[2]), None)))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(package), json.dumps(event)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "t",
                                                                    "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "ok"


@pytest.mark.parametrize("args", [["--arch", "sparc"], ["--python", "three"], ["--bogus"]])
def test_bad_options_exit_2(args):
    done = subprocess.run(["bash", str(REPO / "scripts" / "package-lambda.sh"), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
